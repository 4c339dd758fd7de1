"""From a path to a checked, decoded, mono, resampled waveform: file checks, decoding, the
canonical front end, streaming windows, and the DSP blocks features need.
"""
