"""TransitNet: a 1D CNN that finds planetary transits in light curves, against a Box Least Squares baseline."""
