"""The grading machinery of the exercises: registry, helpers for graders, reports, the command line, handouts."""
