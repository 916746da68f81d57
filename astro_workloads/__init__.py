"""The monitored astronomy workloads: TransitNet (transit detection in light curves) and AstroCode."""
