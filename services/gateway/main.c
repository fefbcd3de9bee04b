/*  =========================================================================
    relais-gateway - HTTP and the operations console for the bus

    Usage: relais-gateway [--config FILE]
    FILE defaults to $RELAIS_CONFIG, else /etc/relais/relais.cfg.
    =========================================================================
*/
#include "gateway_server.h"
#include "intake_server.h"
#include "relais_bus.h"
#include "relais_deploy.h"
#include "relais_clock.h"
#include "relais_log.h"

#include <czmq.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int
main (int argc, char *argv [])
{
    const char *path = getenv ("RELAIS_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--config") == 0 && i + 1 < argc)
            path = argv [++i];
        else {
            fprintf (stderr, "usage: relais-gateway [--config FILE]\n");
            return EXIT_FAILURE;
        }
    }
    if (!path)
        path = "/etc/relais/relais.cfg";
    relais_log_init ("gateway");
    relais_clock_from_env ();
    zsys_handler_set (NULL);                //  libuv's uv_signal_t owns SIGINT/SIGTERM
    signal (SIGPIPE, SIG_IGN);              //  a client gone mid-write is an error code
    if (sodium_init () < 0)
        return EXIT_FAILURE;
    relais_config_t *config = relais_config_load (path);
    //  intake's table too: its endpoints' defaults are the gateway's
    //  defaults (the other services' sections are read as written)
    if (!config || relais_deploy_declare (config) || intake_declare (config)
    ||  gateway_declare (config) || relais_service_setup (config, "gateway", false)) {
        relais_config_destroy (&config);
        return EXIT_FAILURE;                //  the loader said why
    }
    uv_loop_t loop;
    uv_loop_init (&loop);
    gateway_server_t *server = gateway_server_new (&loop, config);
    int rc = server? gateway_server_start (server): -ENOMEM;
    uv_run (&loop, UV_RUN_DEFAULT);         //  returns once every handle is closed
    gateway_server_destroy (&server);
    int closed = uv_loop_close (&loop);     //  UV_EBUSY: a leaked handle
    relais_service_teardown ();
    relais_config_destroy (&config);
    if (closed)
        relais_error ("handles left open at exit: %s", uv_strerror (closed));
    relais_notice ("stopped");
    return rc == 0 && closed == 0? EXIT_SUCCESS: EXIT_FAILURE;
}
