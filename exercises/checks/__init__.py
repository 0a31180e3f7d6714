"""One grader per exercise (exercises/checks/NAME.py): TOPIC, LIBRARY, HINTS, check(module), plug(module)."""
