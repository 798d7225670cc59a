# Typed stubs for the names edgecv-hailo uses of HailoRT's Python package, hailo_platform.
#
# Follows HailoRT 4.21 (hailo8 branch, the line for Hailo-8 / Hailo-8L), written by hand from its
# hailo_platform/__init__.py and pyhailort/pyhailort.py (github.com/hailo-ai/hailort). Only what
# edgecv_hailo/runtime.py calls is declared.

from hailo_platform.pyhailort.pyhailort import FormatType as FormatType
from hailo_platform.pyhailort.pyhailort import HailoRTException as HailoRTException
from hailo_platform.pyhailort.pyhailort import HailoSchedulingAlgorithm as HailoSchedulingAlgorithm
from hailo_platform.pyhailort.pyhailort import VDevice as VDevice

__version__: str
