"""Bad input (a config, a dataset, a checkpoint) reported as one line.

A :class:`UserError` says what is wrong with the user's input and how to fix
it, naming the config keys to change. :func:`report_user_errors` is the one
place that turns such an error into a single ``error: ...`` line on stderr
and exit status 1 (``GCVIT_MM_TRACEBACK=1`` shows the traceback instead); it
also writes the command-line form of the fix (``--cfg-options KEY=VALUE``,
which mmdet's, mmseg's and our ``tools/train.py``/``test.py`` all accept)
for the keys an error names in :attr:`UserError.settings`.
"""
import os
import re
import sys
from contextlib import contextmanager
from typing import Dict, Optional, Tuple

TRACEBACK_ENV = 'GCVIT_MM_TRACEBACK'


class UserError(Exception):
    """An error in the user's input, reported as one ``error: ...`` line.

    Args:
        message (str): What is wrong and how to fix it, on one line.
        settings (dict, optional): Config keys whose value would fix it,
            each with an example value (``{'load_from': '/path/to.pth'}``);
            the reporter adds them as ``--cfg-options KEY=VALUE``.
    """

    def __init__(self, message: str,
                 settings: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.settings = dict(settings or {})


def one_line(exc: BaseException) -> str:
    """Exception message on one line, without mmengine's registry prefixes
    (``class `MaskRCNN` in /path/two_stage.py: ...``), at most 600
    characters."""
    msg = ' '.join(line.strip() for line in str(exc).splitlines()
                   if line.strip())
    msg = re.sub(r'class `\w+` in [^:]+\.py: ', '', msg)
    if not msg:
        msg = type(exc).__name__
    return msg if len(msg) <= 600 else msg[:597] + '...'


def command_line_form(settings: Dict[str, str]) -> str:
    """``--cfg-options k1=v1 k2=v2`` for ``settings`` ('' for none)."""
    if not settings:
        return ''
    return '--cfg-options ' + ' '.join(f'{k}={v}'
                                       for k, v in settings.items())


def describe(exc: BaseException) -> str:
    """The line :func:`report_user_errors` prints for ``exc``, without the
    ``error:`` prefix: its message and the command-line form of its
    ``settings``."""
    line = one_line(exc)
    cli = command_line_form(getattr(exc, 'settings', None) or {})
    return f'{line} (on the command line: {cli})' if cli else line


def fail(msg: str) -> None:
    """Print ``error: msg`` to stderr and exit with status 1."""
    print(f'error: {msg}', file=sys.stderr, flush=True)
    sys.exit(1)


@contextmanager
def report_user_errors(action: Optional[str] = None,
                       exc_types: Tuple[type, ...] = ()):
    """Context manager: an exception of ``exc_types`` (default: only
    :class:`UserError` and :class:`~gcvit_mm.checkpoint.CheckpointError`,
    which are always reported) becomes one ``error: [action: ]message`` line
    on stderr and exit status 1.

    Anything else keeps its traceback, and so does everything when
    ``GCVIT_MM_TRACEBACK`` is set to a value other than 0.

    Args:
        action (str, optional): What stopped, e.g. 'training stopped' or
            'cannot build the runner from the config', put before the
            message.
        exc_types (tuple[type]): Further exception types to report on one
            line (e.g. ``(Exception, )`` while building from a config,
            where any error is the config's). Their line says how to see
            the traceback.
    """
    from ..checkpoint import CheckpointError
    try:
        yield
    except (UserError, CheckpointError) + tuple(exc_types) as exc:
        if os.environ.get(TRACEBACK_ENV, '0') not in ('', '0'):
            raise
        hint = '' if isinstance(exc, (UserError, CheckpointError)) else \
            f' (set {TRACEBACK_ENV}=1 for the traceback)'
        prefix = f'{action}: ' if action else ''
        fail(f'{prefix}{describe(exc)}{hint}')
