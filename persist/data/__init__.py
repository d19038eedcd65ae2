"""Datasets, class-incremental task splits and the device-resident loader."""

from persist.data.datasets import DATASETS, RawDataset
from persist.data.loader import augment, iterate_batches
from persist.data.tasks import TaskData, load_raw, load_task

__all__ = ["DATASETS", "RawDataset", "TaskData", "augment", "iterate_batches", "load_raw", "load_task"]
