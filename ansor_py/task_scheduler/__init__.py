"""The task scheduler (Ansor paper section 6; TVM ``auto_scheduler.TaskScheduler``).

- ``scheduler``: ``TaskScheduler``, the rounds, the strategies, dead tasks, resuming;
- ``gradient``: the gradient estimate that picks the next task, similarity tags;
- ``policies``: one SketchPolicy per task around one shared cost model;
- ``restore``: the log read back into the scheduler's state;
- ``callbacks``: ``TaskSchedulerCallback``, ``PrintTableInfo``, ``LogEstimatedLatency``.
"""

from ansor_py.task_scheduler.callbacks import LogEstimatedLatency, PrintTableInfo, TaskSchedulerCallback
from ansor_py.task_scheduler.restore import ForeignRecordsWarning
from ansor_py.task_scheduler.scheduler import TaskScheduler

__all__ = [
    "ForeignRecordsWarning",
    "LogEstimatedLatency",
    "PrintTableInfo",
    "TaskScheduler",
    "TaskSchedulerCallback",
]
