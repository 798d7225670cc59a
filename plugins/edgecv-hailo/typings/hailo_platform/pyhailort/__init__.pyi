# HailoRT 4.21: the package holding pyhailort.py (see ../__init__.pyi).
