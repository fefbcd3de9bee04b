/*  =========================================================================
    relais-analytics - indicators and trends from every topic of the bus

    Usage: relais-analytics [--config FILE]            run the service
           relais-analytics [--config FILE] --rebuild [--store DIR]
               recompute every aggregate from the sources' logs into the
               fresh store DIR (default: <analytics/store/path>.rebuild)
           relais-analytics [--config FILE] --dump [--store DIR]
               print the canonical dump of the aggregates (DIR default:
               analytics/store/path)
    FILE defaults to $RELAIS_CONFIG, else /etc/relais/relais.cfg.
    =========================================================================
*/
#include "analytics_server.h"
#include "relais_bus.h"
#include "relais_deploy.h"
#include "relais_clock.h"
#include "relais_log.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

static int
s_usage (void)
{
    fprintf (stderr, "usage: relais-analytics [--config FILE] [--rebuild | --dump] [--store DIR]\n");
    return EXIT_FAILURE;
}

int
main (int argc, char *argv [])
{
    const char *path = getenv ("RELAIS_CONFIG");
    const char *store = NULL;
    bool rebuild = false, dump = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--config") == 0 && i + 1 < argc)
            path = argv [++i];
        else
        if (strcmp (argv [i], "--store") == 0 && i + 1 < argc)
            store = argv [++i];
        else
        if (strcmp (argv [i], "--rebuild") == 0)
            rebuild = true;
        else
        if (strcmp (argv [i], "--dump") == 0)
            dump = true;
        else
            return s_usage ();
    }
    if (rebuild && dump)
        return s_usage ();
    if (!path)
        path = "/etc/relais/relais.cfg";
    relais_log_init ("analytics");
    relais_clock_from_env ();
    zsys_handler_set (NULL);                //  libuv's uv_signal_t owns SIGINT/SIGTERM
    relais_config_t *config = relais_config_load (path);
    if (!config || relais_deploy_declare (config) || analytics_declare (config)
    ||  relais_service_setup (config, "analytics", !(rebuild || dump))) {
        relais_config_destroy (&config);
        return EXIT_FAILURE;                //  the loader said why
    }
    if (rebuild || dump) {
        char *dir = relais_config_path (config, "analytics/store/path");
        char *target = NULL;
        if (store)
            target = strdup (store);
        else
        if (dir && rebuild && asprintf (&target, "%s.rebuild", dir) < 0)
            target = NULL;
        else
        if (dir && dump)
            target = strdup (dir);
        int rc = !target? -ENOMEM
               : rebuild? analytics_rebuild (config, target, stdout)
               : analytics_dump (target, stdout);
        free (target);
        free (dir);
        relais_service_teardown ();
        relais_config_destroy (&config);
        fflush (stdout);
        zsys_shutdown ();
        return rc == 0? EXIT_SUCCESS: EXIT_FAILURE;
    }
    uv_loop_t loop;
    uv_loop_init (&loop);
    analytics_server_t *server = analytics_server_new (&loop, config);
    int rc = server? analytics_server_start (server): -ENOMEM;
    uv_run (&loop, UV_RUN_DEFAULT);         //  returns once every handle is closed
    analytics_server_destroy (&server);
    int closed = uv_loop_close (&loop);     //  UV_EBUSY: a leaked handle
    relais_service_teardown ();
    relais_config_destroy (&config);
    if (closed)
        relais_error ("handles left open at exit: %s", uv_strerror (closed));
    relais_notice ("stopped");
    return rc == 0 && closed == 0? EXIT_SUCCESS: EXIT_FAILURE;
}
