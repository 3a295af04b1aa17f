"""The only code that knows SPDK's wire: client, typed methods, error mapping, simulator."""
