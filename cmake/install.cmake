# `cmake --install` (GNUInstallDirs), included from CMakeLists.txt.
#
#   bin/ioserve                          (CMakeLists.txt)
#   lib/ioserve/plugins/<model>.so       (ioserve_add_plugin)
#   include/ioserve/plugin.h             (CMakeLists.txt)
#   lib/pkgconfig/ioserve-plugin.pc      cflags, plugindir, abi, version
#   etc/ioserve/ioserve.cfg(.default)    etc/ioserve.cfg made fit to install
#   share/man/man8/ioserve.8, man5/ioserve.cfg.5
#   lib/systemd/system/ioserve.{service,socket}
#   share/ioserve/grafana/ioserve.json   the Grafana dashboard
#   share/ioserve/prometheus/prometheus.yml  a scrape config for status_listen
#   var/run/                             where the installed config's pid_file goes
#
# The files that name install paths (the config, the .pc file and the
# service) are written at install time, from the prefix actually used, so
# `cmake --install build --prefix DIR` gives a tree that is consistent in
# itself; cmake/install-generate.cmake does that.

# GNUInstallDirs keeps most dirs relative to the prefix, but makes sysconfdir
# and runstatedir absolute (/etc, /var/run) for prefix /usr.  A relative dir
# follows `--prefix` at install time; an absolute one stays put.
function(ioserve_install_dir out name)
  file(RELATIVE_PATH rel "${CMAKE_INSTALL_PREFIX}" "${CMAKE_INSTALL_FULL_${name}}")
  if(rel MATCHES "^\\.\\./" OR IS_ABSOLUTE "${rel}")
    set(${out} "${CMAKE_INSTALL_FULL_${name}}" PARENT_SCOPE)
  else()
    set(${out} "${rel}" PARENT_SCOPE)
  endif()
endfunction()

ioserve_install_dir(IOSERVE_SYSCONF_DIR SYSCONFDIR)
ioserve_install_dir(IOSERVE_RUNSTATE_DIR RUNSTATEDIR)
set(IOSERVE_CONFIG_INSTALL_DIR "${IOSERVE_SYSCONF_DIR}/ioserve")
set(IOSERVE_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE STRING
    "Where the systemd units go (relative: under the prefix)")

# The ABI version of the header, for the .pc file.
file(STRINGS include/ioserve/plugin.h abi_lines REGEX "^#define IOS_ABI_M(AJOR|INOR) ")
string(REGEX REPLACE ".*IOS_ABI_MAJOR ([0-9]+).*" "\\1" IOSERVE_ABI_MAJOR "${abi_lines}")
string(REGEX REPLACE ".*IOS_ABI_MINOR ([0-9]+).*" "\\1" IOSERVE_ABI_MINOR "${abi_lines}")

install(FILES man/ioserve.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES man/ioserve.cfg.5 DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
install(FILES dist/ioserve.socket DESTINATION ${IOSERVE_SYSTEMD_UNIT_DIR})
install(FILES dist/grafana/ioserve.json DESTINATION ${CMAKE_INSTALL_DATADIR}/ioserve/grafana)
install(FILES dist/prometheus/prometheus.yml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/ioserve/prometheus)
if(NOT IS_ABSOLUTE "${IOSERVE_RUNSTATE_DIR}") # /var/run exists already
  install(DIRECTORY DESTINATION ${IOSERVE_RUNSTATE_DIR})
endif()

install(CODE "
  set(IOSERVE_SOURCE_DIR \"${CMAKE_SOURCE_DIR}\")
  set(IOSERVE_GEN_DIR \"${CMAKE_BINARY_DIR}/install-gen\")
  set(IOSERVE_VERSION \"${PROJECT_VERSION}\")
  set(IOSERVE_ABI \"${IOSERVE_ABI_MAJOR}.${IOSERVE_ABI_MINOR}\")
  set(IOSERVE_BIN_DIR \"${CMAKE_INSTALL_BINDIR}\")
  set(IOSERVE_INCLUDE_DIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(IOSERVE_LIB_DIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(IOSERVE_PLUGIN_DIR \"${IOSERVE_PLUGIN_INSTALL_DIR}\")
  set(IOSERVE_CONFIG_DIR \"${IOSERVE_CONFIG_INSTALL_DIR}\")
  set(IOSERVE_RUN_DIR \"${IOSERVE_RUNSTATE_DIR}\")
  set(IOSERVE_UNIT_DIR \"${IOSERVE_SYSTEMD_UNIT_DIR}\")
  include(\"${CMAKE_SOURCE_DIR}/cmake/install-generate.cmake\")
")
