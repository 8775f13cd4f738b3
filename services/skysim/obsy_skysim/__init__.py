"""OBSY sky simulator: INDI camera drivers that render the real sky, with clouds on command."""


def warm_up() -> None:
    """Compile the simulator's numba kernels (the sensor's read-out, the star stamps) now, or load
    them from numba's cache: seconds of CPU the first time, well under one after."""
    from obsy_skysim import readout, stars

    readout.warm_up()
    stars.warm_up()
