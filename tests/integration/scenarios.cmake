# Integration scenarios of ioserve-it (tests/integration/*.c).
#
# IT_MODEL_SCENARIOS run once per model of cmake/models.cmake, as
#   ctest name it.<model>.<scenario>  ->  ioserve-it <scenario> <model>
# IT_GLOBAL_SCENARIOS run once, with model epoll, as it.<scenario>.
# A new scenario: write its it_run_<name>() and add it to main.c and here.
set(IT_MODEL_SCENARIOS
  echo
  upper
  concurrent
  slow_reader
  half_close
  reset
  http
  http_rfc
  max_conn
  idle
  kill9
  workers
  slowloris
  emfile
  many_conns
  soak
  refusals
  orphan
  spread
  stop_reading
  linger
  timeouts
  resume
  refused_reset
  handover_rotation
  handover_stream
  handover_idle
  handover_spread
  handover_kill
  handover_abi11
  handover_quit
  handover_off
  health
  upgrade_load
  quit
)
set(IT_GLOBAL_SCENARIOS
  bad_config
  bad_plugin
  check_ok
  reload_swap
  reload_bad
  drain
  listen_change
  signals
  metrics
  socket_activation
  sd_notify
  uring_unavailable
  fork_refused
  privdrop
  lifecycle
  restart_settings
  handover_host
  metrics_counts
  reload_promises
  exclusive_wakeup
  generation_start
  health_master
  canary_off
  canary_bad
  canary_systemd
  upgrade_broken
  upgrade_systemd
  upgrade_drains
)
# The A/B split, per pair MAIN:CANARY of models: ctest names them
# it.canary.<MAIN>_<CANARY>.<scenario>  ->  ioserve-it <scenario> MAIN, with
# IOSERVE_CANARY=CANARY.  Each side of a pair is the other's canary once.
set(IT_CANARY_PAIRS
  epoll:uring
  uring:epoll
  select:poll
  poll:select
  blocking:sigio
  sigio:blocking
)
set(IT_CANARY_SCENARIOS
  canary_split
  canary_promote
)
