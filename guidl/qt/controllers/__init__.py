"""The window's behaviour, one concern per controller (files and recovery,
data, training, evaluation, export), with the session they share and the
table of actions. ``MainWindow`` builds the widgets and wires these together;
a controller drives the window's widgets but never another view's state."""
