"""The demo: the seed guides' scenarios, ready to run (``signoff demo``)."""
