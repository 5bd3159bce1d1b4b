# The models ioserve builds and tests, one per line.  Adding a model here
# builds plugins/<name>.c and runs every integration scenario against it.
set(IOSERVE_MODELS
  blocking
  nonblocking
  select
  poll
  epoll
  sigio
  uring
)

# Knob variants run through the integration scenarios too, one per line:
#   "NAME MODEL KEY=VALUE[,KEY=VALUE...] [SCENARIO...]"
# (the iterative blocking server takes one client at a time, so only the
# scenarios that use one connection at a time apply to it)
# (the -o overrides the variant's servers start with; no scenario named =
# every per-model scenario).  ctest names them it.<NAME>.<scenario>.
set(IOSERVE_MODEL_VARIANTS
  "epoll_et epoll models.epoll.edge_triggered=true"
  "uring_single uring models.uring.multishot=false,models.uring.buffer_ring=false"
  "blocking_iterative blocking models.blocking.threads=false upper half_close http"
)
