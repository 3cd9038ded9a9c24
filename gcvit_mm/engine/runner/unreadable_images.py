"""An image that cannot be read in the middle of a run, reported as one line
naming the file, the config key of its dataset and its annotation file."""
from typing import Optional

from mmengine.dataset import Compose

from ...utils.user_errors import UserError, one_line


class UnreadableImageError(UserError):
    """An image of a dataset that cannot be read, reported on one line.

    Raised in a DataLoader worker, it reaches the main process as
    ``UnreadableImageError(text)``, torch's re-creation from the worker's
    formatted traceback, whose last line is ``<module>.<name>: <our line>``:
    the constructor recovers our line from it and keeps the worker's
    traceback as a note (shown with GCVIT_MM_TRACEBACK=1)."""

    def __init__(self, text: str):
        prefix = f'{type(self).__module__}.{type(self).__qualname__}: '
        lines = [line for line in text.splitlines() if line.strip()]
        last = lines[-1] if lines else text
        line = last[len(prefix):] if last.startswith(prefix) else text
        super().__init__(line)
        if line != text and hasattr(self, 'add_note'):  # Python >= 3.11
            self.add_note(text)


class ReportingCompose(Compose):
    """A dataset's pipeline that turns a failure to read a sample's image
    into an :class:`UnreadableImageError` naming the file.

    Args:
        transforms (list): The pipeline's transforms, as :class:`Compose`.
        key (str): Config key of the dataset, e.g.
            'train_dataloader.dataset'.
        ann_file (str, optional): The dataset's annotation file, named in
            the fix.
    """

    def __init__(self, transforms, key: str, ann_file: Optional[str]):
        super().__init__(transforms)
        self.key, self.ann_file = key, ann_file

    def __call__(self, data: dict) -> Optional[dict]:
        for transform in self.transforms:
            try:
                data = transform(data)
            except Exception as e:
                # Until the image is in the results, reading it is the only
                # thing a transform can fail at: that failure is the data's,
                # anything later keeps its traceback.
                if isinstance(data, dict) and 'img' not in data and \
                        data.get('img_path'):
                    where = (f'remove it from {self.ann_file!r}'
                             if self.ann_file else 'remove it')
                    raise UnreadableImageError(
                        f'cannot read image {data["img_path"]!r} of '
                        f'{self.key} ({one_line(e)}); {where} or replace '
                        f'it with a valid image') from e
                raise
            if data is None:  # as Compose: the dataset picks another sample
                return None
        return data


def report_unreadable_images(dataset, key: str) -> None:
    """Give ``dataset`` and the datasets it wraps a :class:`ReportingCompose`
    in place of their plain ``Compose`` pipeline (custom pipelines stay)."""
    for i, sub in enumerate(getattr(dataset, 'datasets', None) or []):
        report_unreadable_images(sub, f'{key}.datasets.{i}')
    if getattr(dataset, 'dataset', None) is not None:
        report_unreadable_images(dataset.dataset, f'{key}.dataset')
    pipeline = getattr(dataset, 'pipeline', None)
    if type(pipeline) is Compose:  # not yet wrapped, nor a custom one
        dataset.pipeline = ReportingCompose(
            pipeline.transforms, key, getattr(dataset, 'ann_file', None))
