"""What is done with finished runs: evaluate, interpret, compare, report, export, ensembles, CV."""
