"""Operations: worker heartbeats, queue lengths and problem photos for the health page (``health``),
and the torch threads each worker process runs with (``threads``)."""
