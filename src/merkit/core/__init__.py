"""What every stage shares: errors, labels, versions, input names, progress, the process pool, the
numba guard and atomic replacement of files and folders.
"""
