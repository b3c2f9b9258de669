"""The course's pytest plugin lives in minimind/course/plugin.py; this registers it."""
pytest_plugins = ["minimind.course.plugin"]
