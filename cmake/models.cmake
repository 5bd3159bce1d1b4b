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
