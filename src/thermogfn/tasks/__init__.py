"""Tasks: rewards over fixed-length integer objects, with shaping and mode sets."""

from thermogfn.tasks.base import Shaping, Task, TaskDefaults
from thermogfn.tasks.registry import TASKS, load_task, make_task

__all__ = ["TASKS", "Shaping", "Task", "TaskDefaults", "load_task", "make_task"]
