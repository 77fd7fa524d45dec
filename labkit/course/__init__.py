"""The notebook course as a package of lessons: one module per notebook, holding what that
lesson shows but the lab itself does not need -- its helpers and its exercise checkers side by
side.

========================================  =================================================
notebook                                  lesson module
========================================  =================================================
``00_tour``                               :mod:`labkit.course.l00_tour`
``01_lwm2m_basics``                       :mod:`labkit.course.l01_lwm2m_basics`
``02_firmware_update_object``             :mod:`labkit.course.l02_firmware_update_object`
``03_pull_vs_push``                       :mod:`labkit.course.l03_pull_vs_push`
``04_link_quality_vs_push``               :mod:`labkit.course.l04_link_quality_vs_push`
``05_failure_modes``                      :mod:`labkit.course.l05_failure_modes`
``06_secure_boot_and_rollback``           :mod:`labkit.course.l06_secure_boot_and_rollback`
``07_fleet_campaign``                     :mod:`labkit.course.l07_fleet_campaign`
``08_analysing_runs``                     :mod:`labkit.course.l08_analysing_runs`
``09_real_device``                        :mod:`labkit.course.l09_real_device`
========================================  =================================================

A notebook imports its own lesson (``from labkit.course import l02_firmware_update_object as
lesson``) and calls ``lesson.walk(...)``, ``lesson.check("fuo.execute_state", answer)``: the
lesson module re-exports the shared helpers its notebook uses, so a teacher who changes
lesson 05 edits ``l05_*.py`` and nothing else. A lesson too large for one file has a companion
``lNN_<part>.py`` (``l04_policy_runs``, ``l05_matrix``, ``l09_background``).

Shared by several lessons: :mod:`labkit.course.common` (fast mode, packages, the event log,
hex dumps, the course key), :mod:`labkit.course.exercises` (the exercise registry and the
readers of an answer) and :mod:`labkit.course.staging` (a lab in scaled time and a fleet on
it, for lessons 04 and 07).

The course decides nothing about LwM2M and never changes the lab: it reads what the lab, the
core (:mod:`labkit.lwm2m`) and the event table already know and puts it in front of a
student. Tables are tidy DataFrames with a RangeIndex; objects that a cell shows render
themselves (``_repr_html_``) and print as plain text.

This package imports only :mod:`labkit.course.common` on import (no lab, no widgets), so
``from labkit.course import package`` is cheap for the rest of labkit.
"""

from __future__ import annotations

from labkit.course.common import FAST_ENV, PACKAGE_MAGIC, fast_mode, free_port, package

__all__ = ["FAST_ENV", "PACKAGE_MAGIC", "fast_mode", "free_port", "package"]
