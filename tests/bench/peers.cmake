#   relais-peerbench and bench-peers: the side-by-side benchmark against
#   Redis Streams, NATS JetStream and Mosquitto (tests/bench/peers.py,
#   BENCHMARKS.md). The program is built only when the three C clients are
#   installed (deploy/install-deps.sh --bench); the normal build needs none.
#       cmake --build build --target bench-peers     the full run (~10 min)
#   bench-peers-smoke (ctest -L bench) runs peers.py --quick --only relais
#   with tiny counts (--smoke); it is skipped (77) when the clients are
#   absent. It checks that every phase completes, never a figure.
pkg_check_modules (HIREDIS IMPORTED_TARGET hiredis)
pkg_check_modules (NATS IMPORTED_TARGET libnats)
pkg_check_modules (MOSQUITTO IMPORTED_TARGET libmosquitto)

set (RELAIS_PEERS_SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/peers.py)
if (HIREDIS_FOUND AND NATS_FOUND AND MOSQUITTO_FOUND)
    add_executable (relais-peerbench peerbench.c peerbench_relais.c peerbench_redis.c
                                     peerbench_nats.c peerbench_mqtt.c bench_replay.c)
    target_link_libraries (relais-peerbench PRIVATE relais PkgConfig::HIREDIS PkgConfig::NATS
                           PkgConfig::MOSQUITTO Threads::Threads m)
    set (RELAIS_PEERBENCH $<TARGET_FILE:relais-peerbench>)
    set (RELAIS_PEERBENCH_DEPENDS relais-peerbench)
else ()
    message (STATUS "relais-peerbench not built: hiredis, libnats or libmosquitto missing "
                    "(deploy/install-deps.sh --bench installs them)")
    set (RELAIS_PEERBENCH "")
    set (RELAIS_PEERBENCH_DEPENDS "")
endif ()

#   Without the clients, peers.py installs them, configures and builds this
#   tree again, then runs: one command either way.
add_custom_target (bench-peers
    COMMAND /usr/bin/python3 ${RELAIS_PEERS_SCRIPT} --peerbench "${RELAIS_PEERBENCH}"
            --intake $<TARGET_FILE:relais-intake>
            --source-dir ${PROJECT_SOURCE_DIR} --build-dir ${PROJECT_BINARY_DIR}
    DEPENDS relais-intake ${RELAIS_PEERBENCH_DEPENDS}
    USES_TERMINAL)

add_test (NAME bench-peers-smoke
          COMMAND /usr/bin/python3 ${RELAIS_PEERS_SCRIPT} --quick --smoke --only relais --no-install
                  --peerbench "${RELAIS_PEERBENCH}" --intake $<TARGET_FILE:relais-intake>)
set_tests_properties (bench-peers-smoke PROPERTIES TIMEOUT 300 LABELS bench SKIP_RETURN_CODE 77)
