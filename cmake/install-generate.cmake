# Runs at install time (install(CODE) in cmake/install.cmake), where
# CMAKE_INSTALL_PREFIX is the prefix actually used (`--prefix` included).
# Writes the installed files that name install paths:
#   ioserve.cfg.default  etc/ioserve.cfg without its build-tree paths:
#                        pid_file under the run-state dir, plugin_dir left to
#                        the default (the installed plugin dir);
#   ioserve.cfg          the same, unless one is already installed (an
#                        edited config is kept, as nginx does);
#   ioserve-plugin.pc    for `pkg-config --cflags ioserve-plugin`;
#   ioserve.service      the systemd unit with the paths filled in.

# DIR as an absolute path: relative ones are under the prefix.
function(ioserve_full out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

# DIR for a .pc file: ${prefix}-relative when it is under the prefix, so
# `pkg-config --define-prefix` and --define-variable=prefix=... work.
function(ioserve_pc_dir out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "\${prefix}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

ioserve_full(bindir "${IOSERVE_BIN_DIR}")
ioserve_full(plugindir "${IOSERVE_PLUGIN_DIR}")
ioserve_full(configdir "${IOSERVE_CONFIG_DIR}")
ioserve_full(rundir "${IOSERVE_RUN_DIR}")
ioserve_full(unitdir "${IOSERVE_UNIT_DIR}")
ioserve_full(pcdir "${IOSERVE_LIB_DIR}/pkgconfig")
file(MAKE_DIRECTORY "${IOSERVE_GEN_DIR}")

# ------------------------------------------------------------- the config
file(READ "${IOSERVE_SOURCE_DIR}/etc/ioserve.cfg" cfg)
foreach(key pid_file plugin_dir)
  if(NOT cfg MATCHES "\n#?${key} = [^\n]*")
    message(FATAL_ERROR "etc/ioserve.cfg: no '${key} = ...' line to adjust for "
            "the installed config (see cmake/install-generate.cmake)")
  endif()
endforeach()
string(REGEX REPLACE "\n#?pid_file = [^\n]*" "\npid_file = \"${rundir}/ioserve.pid\";"
       cfg "${cfg}")
string(REGEX REPLACE "\n#?plugin_dir = [^\n]*" "\n#plugin_dir = \"${plugindir}\";"
       cfg "${cfg}")
string(REPLACE "this file writes it into the build directory."
       "the installed file keeps it in the run-state directory." cfg "${cfg}")
string(REGEX REPLACE "ioserve -c etc/ioserve\\.cfg( -o [^ ]+|) +"
       "ioserve -c ${configdir}/ioserve.cfg\\1  " cfg "${cfg}")
# Whatever else changes in etc/ioserve.cfg, no setting may point into the
# source or build tree ("../build/..." relative to etc/).
string(REGEX MATCHALL "\n[a-z_]+ = \"\\.\\.[^\n]*" stray "${cfg}")
if(stray)
  message(FATAL_ERROR "etc/ioserve.cfg: setting(s) pointing into the build tree "
          "would be installed:${stray}")
endif()
file(WRITE "${IOSERVE_GEN_DIR}/ioserve.cfg.default" "${cfg}")
file(INSTALL DESTINATION "${configdir}" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${IOSERVE_GEN_DIR}/ioserve.cfg.default")
if(EXISTS "$ENV{DESTDIR}${configdir}/ioserve.cfg")
  message(STATUS "Kept: $ENV{DESTDIR}${configdir}/ioserve.cfg "
          "(the new default is ioserve.cfg.default beside it)")
else()
  file(INSTALL DESTINATION "${configdir}" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
       FILES "${IOSERVE_GEN_DIR}/ioserve.cfg.default" RENAME ioserve.cfg)
endif()

# ---------------------------------------------------------- pkg-config
ioserve_pc_dir(pc_includedir "${IOSERVE_INCLUDE_DIR}")
ioserve_pc_dir(pc_libdir "${IOSERVE_LIB_DIR}")
ioserve_pc_dir(pc_plugindir "${IOSERVE_PLUGIN_DIR}")
set(prefix "${CMAKE_INSTALL_PREFIX}")
configure_file("${IOSERVE_SOURCE_DIR}/cmake/ioserve-plugin.pc.in"
               "${IOSERVE_GEN_DIR}/ioserve-plugin.pc" @ONLY)
file(INSTALL DESTINATION "${pcdir}" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${IOSERVE_GEN_DIR}/ioserve-plugin.pc")

# ------------------------------------------------------------- systemd
configure_file("${IOSERVE_SOURCE_DIR}/dist/ioserve.service.in"
               "${IOSERVE_GEN_DIR}/ioserve.service" @ONLY)
file(INSTALL DESTINATION "${unitdir}" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${IOSERVE_GEN_DIR}/ioserve.service")
