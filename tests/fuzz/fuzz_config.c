/*  =========================================================================
    fuzz_config - libFuzzer target: the deployment file

    Operators write it by hand: whatever it holds, loading it and declaring
    the sections every program declares (relais, security, intake with its
    rules, router with its rules) must refuse it with a reason or accept it,
    never crash. The input is written to a file, as the loader reads files.
    =========================================================================
*/
#include "intake_server.h"
#include "relais_config.h"
#include "relais_deploy.h"
#include "relais_log.h"
#include "relais_security.h"
#include "router_server.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static char path [64];
    if (!path [0]) {
        snprintf (path, sizeof path, "/tmp/fuzz_config.%d.cfg", (int) getpid ());
        relais_log_level (RELAIS_LOG_ERROR);
    }
    FILE *file = fopen (path, "wb");
    if (!file)
        return 0;
    fwrite (data, 1, size, file);
    fclose (file);
    relais_config_t *config = relais_config_load (path);
    if (config) {
        if (relais_deploy_declare (config) == 0 && relais_security_declare (config) == 0
        &&  intake_declare (config) == 0 && router_declare (config) == 0) {
            char *data_dir = relais_config_path (config, "relais/data");
            free (data_dir);
            relais_config_size (config, "intake/store/map_size", 0);
            relais_config_duration_ms (config, "intake/heartbeat", 0);
            relais_config_bool (config, "security/curve", false);
            relais_deploy_runs (config, "router");
        }
        relais_config_destroy (&config);
    }
    unlink (path);
    return 0;
}
