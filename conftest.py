"""Root conftest: puts the repository root on sys.path so tests import `engine` and `api`."""
