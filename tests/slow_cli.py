"""`python tests/slow_cli.py DELAY ARGS...` = `python -m spacy_threephase ARGS...` with every
training step slowed down by DELAY seconds (a step callback), so that a test can kill it mid-run."""

import sys
import time

from spacy_threephase.callbacks import STEP_CALLBACKS
from spacy_threephase.cli import main

if __name__ == "__main__":
    delay = float(sys.argv[1])
    STEP_CALLBACKS.append(lambda phase, step, model: time.sleep(delay))
    sys.argv = ["spacy_threephase", *sys.argv[2:]]
    main()
