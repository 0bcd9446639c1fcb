"""Everything that runs torch: building models, (later) data, training,
metrics and export. Never imports Qt, so it runs on a server with no display."""

from .build import BuiltModel, LayerReport, ModelReport, analyze, build

__all__ = ["BuiltModel", "LayerReport", "ModelReport", "analyze", "build"]
