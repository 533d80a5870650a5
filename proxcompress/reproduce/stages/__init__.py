"""The stage functions of ``proxcompress reproduce`` (one module per wing or theme; each
function takes a :class:`~proxcompress.reproduce.stage.Context` and returns an
:class:`~proxcompress.reproduce.stage.Outcome`). They import their wing inside the function."""
