# Copyright (c) gcvit_mm contributors. All rights reserved.
__version__ = '0.1.0'


def parse_version_info(version_str):
    """Parse a version string like '0.1.0' or '0.1.0rc1' into a tuple."""
    version_info = []
    for x in version_str.split('.'):
        if x.isdigit():
            version_info.append(int(x))
        elif 'rc' in x:
            patch, rc = x.split('rc')
            version_info.extend([int(patch), f'rc{rc}'])
    return tuple(version_info)


version_info = parse_version_info(__version__)

__all__ = ['__version__', 'version_info']
