"""Errors the user can act on. The CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """A problem with the user's input, files or settings, explained in one line."""


class SettingError(UserError, ValueError):
    """A bad value for a registered function's argument in a config (spacy train reports it as
    the ValueError it is; our commands as one line naming the config file)."""


class DataError(UserError, ValueError):
    """Bad input data: the message names the file, the line and the problem."""

    def __init__(self, path, line, problem: str):
        self.path = str(path) if path is not None else None
        self.line = line
        self.problem = problem
        where = self.path or "<data>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {problem}")
