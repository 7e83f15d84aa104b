__title__ = "spacy-threephase"
__version__ = "0.1.0"
