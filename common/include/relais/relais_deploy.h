/*  =========================================================================
    relais_deploy - the "relais" section of the deployment file

    @header
    What the whole deployment shares: the data folder (every service's
    store and every relative path lives under it), the list of services
    this machine runs (the demo launcher and `relais status` read it), and
    the folder of the services' log files when the launcher starts them.
    =========================================================================
*/
#ifndef RELAIS_DEPLOY_H_INCLUDED
#define RELAIS_DEPLOY_H_INCLUDED

#include "relais_config.h"

//  Every service this version knows, in start order (sources first).
extern const char *const relais_deploy_all_services [];

extern const relais_config_key_t relais_deploy_keys [];

//  Declare the "relais" section. Returns 0 or RELAIS_ECONFIG.
int
    relais_deploy_declare (relais_config_t *config);

//  True when service is listed in relais/services.
bool
    relais_deploy_runs (relais_config_t *config, const char *service);

#endif
