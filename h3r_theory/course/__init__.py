"""The course kit: exercise handouts and a grader built on the solution scripts' own assertions.

``h3r-grade handout OUTDIR`` writes the exercises without their answers; ``h3r-grade grade PATH`` grades a
student's files. The solution scripts (``notebooks/solutions/NN_name.py``) are split into cells by marker
lines (see :mod:`h3r_theory.course.cells`); the grader runs each answer cell of the student followed by the
solution's check cells (:mod:`h3r_theory.course.grading`).
"""
