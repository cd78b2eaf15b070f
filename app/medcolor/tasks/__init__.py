"""What the tasks are made of - classification and reconstruction (data, head, metrics, what a finished run writes),
losses, metrics, statistics, calibration - and, in `interface`, the one Task interface and registry over them."""
