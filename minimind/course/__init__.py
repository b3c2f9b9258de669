"""The course machinery: the pytest plugin, lessons and their exercises, the catalogue of known
mistakes, diagnosis of wrong answers, claims' measured checks, progress and calibration.

The model library (minimind/*.py and minimind/lab/) never imports this package; lesson tests
and the suite's meta-tests do:

    from minimind.course import check_close    # tensors and numbers
    from minimind.course import check_equal    # token ids, lists, dicts, strings: exactly
"""
from minimind.course.diagnosis import WrongAnswer, check_close, check_equal

__all__ = ["WrongAnswer", "check_close", "check_equal"]
