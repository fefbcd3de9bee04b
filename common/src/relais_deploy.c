/*  =========================================================================
    relais_deploy - the "relais" section of the deployment file
    =========================================================================
*/
#include "relais_deploy.h"

#include <stdio.h>
#include <string.h>

//  Names a deployment file may list. A name whose binary is not built is
//  refused by the launcher, not here: the file format knows every service.
const char *const relais_deploy_all_services [] = {
    "intake", "router", "plans", "capacity", "analytics", "gateway", "feedback", NULL
};

static bool
s_check_services (const char *value, char *why, size_t size)
{
    char copy [256];
    snprintf (copy, sizeof copy, "%s", value);
    char *save = NULL;
    for (char *name = strtok_r (copy, " ,", &save); name; name = strtok_r (NULL, " ,", &save)) {
        bool known = false;
        for (int i = 0; relais_deploy_all_services [i] && !known; i++)
            known = strcmp (name, relais_deploy_all_services [i]) == 0;
        if (!known) {
            snprintf (why, size, "unknown service '%.40s'", name);
            return false;
        }
    }
    return true;
}

const relais_config_key_t relais_deploy_keys [] = {
    { "data", "var", relais_check_path, "data folder (relative: to this file's folder)" },
    { "services", "intake", s_check_services, "services this machine runs, in start order" },
    { "logs", "logs", relais_check_path, "folder of the services' log files (relative: under data)" },
    { "notifiers", "", NULL, "partners whose notifier the demo launcher starts (file sinks in logs)" },
    { NULL, NULL, NULL, NULL }
};

int
relais_deploy_declare (relais_config_t *config)
{
    return relais_config_declare (config, "relais", relais_deploy_keys);
}

bool
relais_deploy_runs (relais_config_t *config, const char *service)
{
    const char *list = relais_config_str (config, "relais/services");
    if (!list)
        return false;
    size_t len = strlen (service);
    for (const char *p = list; (p = strstr (p, service)); p += len) {
        bool start = p == list || p [-1] == ' ' || p [-1] == ',';
        bool end = p [len] == 0 || p [len] == ' ' || p [len] == ',';
        if (start && end)
            return true;
    }
    return false;
}
