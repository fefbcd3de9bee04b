/*  =========================================================================
    relais-feedback - producers follow the fate of their own reports

    Usage: relais-feedback [--config FILE]
    FILE defaults to $RELAIS_CONFIG, else /etc/relais/relais.cfg.
    =========================================================================
*/
#include "feedback_server.h"
#include "relais_bus.h"
#include "relais_deploy.h"
#include "relais_clock.h"
#include "relais_log.h"

#include <czmq.h>
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
            fprintf (stderr, "usage: relais-feedback [--config FILE]\n");
            return EXIT_FAILURE;
        }
    }
    if (!path)
        path = "/etc/relais/relais.cfg";
    relais_log_init ("feedback");
    relais_clock_from_env ();
    zsys_handler_set (NULL);                //  libuv's uv_signal_t owns SIGINT/SIGTERM
    relais_config_t *config = relais_config_load (path);
    if (!config || relais_deploy_declare (config) || feedback_declare (config)
    ||  relais_service_setup (config, "feedback", true)) {
        relais_config_destroy (&config);
        return EXIT_FAILURE;                //  the loader said why
    }
    uv_loop_t loop;
    uv_loop_init (&loop);
    feedback_server_t *server = feedback_server_new (&loop, config);
    int rc = server? feedback_server_start (server): -ENOMEM;
    uv_run (&loop, UV_RUN_DEFAULT);         //  returns once every handle is closed
    feedback_server_destroy (&server);
    int closed = uv_loop_close (&loop);     //  UV_EBUSY: a leaked handle
    relais_service_teardown ();
    relais_config_destroy (&config);
    if (closed)
        relais_error ("handles left open at exit: %s", uv_strerror (closed));
    relais_notice ("stopped");
    return rc == 0 && closed == 0? EXIT_SUCCESS: EXIT_FAILURE;
}
