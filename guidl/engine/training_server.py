"""What the fork server that training processes start from imports before
its first fork (see ``guidl.engine.training_process``): the engine, and
what torch imports only on its first model. Each training process then
starts with all of it in place, in a fraction of a second.

Importing this module has those side effects; only the fork server does.
"""

import gc

from .training_process import warm_engine

warm_engine()
# Everything imported so far lives as long as the server: out of the cyclic
# collector's sight, a collection in a child neither walks these objects nor
# writes to the memory pages the children share with the server.
gc.freeze()
