"""Datasets, class-incremental task splits and the device-resident loader."""

from persist.data import folders  # noqa: F401  (registers cub200 and resisc45)
from persist.data.datasets import DATASETS, RawDataset, Source
from persist.data.loader import augment, iterate_batches
from persist.data.tasks import TaskData, load_raw, load_task

__all__ = ["DATASETS", "RawDataset", "Source", "TaskData", "augment", "iterate_batches", "load_raw", "load_task"]
