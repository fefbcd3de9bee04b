/*  =========================================================================
    test_security - the role table, certificates, and start-up refusals
    =========================================================================
*/
#include "relais_config.h"
#include "relais_log.h"
#include "relais_security.h"
#include "relais_test.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_root [512];

static void
test_roles (void)
{
    CHECK (relais_security_role_allows ("producer", "intake/submit"));
    CHECK (!relais_security_role_allows ("producer", "intake/pub"));
    CHECK (!relais_security_role_allows ("producer", "intake/fetch"));
    CHECK (!relais_security_role_allows ("producer", "intake/records"));
    CHECK (!relais_security_role_allows ("producer", "router/partners"));
    CHECK (relais_security_role_allows ("partner", "router/partners"));
    CHECK (!relais_security_role_allows ("partner", "intake/submit"));
    CHECK (!relais_security_role_allows ("partner", "router/pub"));
    CHECK (!relais_security_role_allows ("partner", "plans/api"));
    CHECK (relais_security_role_allows ("operations", "intake/records"));
    CHECK (relais_security_role_allows ("operations", "plans/api"));
    CHECK (relais_security_role_allows ("service", "intake/records"));
    CHECK (relais_security_role_allows ("service", "capacity/pub"));
    CHECK (!relais_security_role_allows ("service", "router/partners"));
    CHECK (relais_security_role_allows ("gateway", "intake/submit"));
    CHECK (relais_security_role_allows ("gateway", "intake/records"));
    CHECK (!relais_security_role_allows ("gateway", "router/partners"));
    CHECK (!relais_security_role_allows ("gateway", "unlisted"));
    CHECK (!relais_security_role_allows ("king", "intake/submit"));
    CHECK (!relais_security_role_allows (NULL, "intake/submit"));
    //  Feedback: a producer follows its own reports; a partner does not
    CHECK (relais_security_role_allows ("producer", "feedback/feed"));
    CHECK (relais_security_role_allows ("producer", "feedback/api"));
    CHECK (!relais_security_role_allows ("producer", "feedback/pub"));
    CHECK (!relais_security_role_allows ("partner", "feedback/feed"));
    CHECK (relais_security_role_allows ("gateway", "feedback/feed"));
}

static relais_config_t *
s_config (const char *certs)
{
    char path [600];
    snprintf (path, sizeof path, "%s/relais.cfg", s_root);
    FILE *file = fopen (path, "w");
    CHECK (file);
    fprintf (file, "relais\n    data = \"%s\"\nsecurity\n    curve = true\n    certs = \"%s\"\n",
             s_root, certs);
    fclose (file);
    relais_config_t *config = relais_config_load (path);
    CHECK (config);
    CHECK_OK (relais_security_declare (config));
    return config;
}

static void
test_keygen_and_start (void)
{
    char certs [600];
    snprintf (certs, sizeof certs, "%s/certs", s_root);
    relais_config_t *config = s_config ("certs");
    //  No folder yet, then an empty one: refused (fail closed)
    CHECK (relais_security_start (config, "intake", true) == RELAIS_ECONFIG);
    CHECK (mkdir (certs, 0700) == 0);
    CHECK (relais_security_start (config, "intake", true) == RELAIS_ECONFIG);
    CHECK (!relais_security_on ());

    CHECK_OK (relais_security_keygen (certs, "intake", "service", NULL, NULL, NULL));
    CHECK_OK (relais_security_keygen (certs, "uasa", "partner", "uasa", NULL, NULL));
    CHECK (relais_security_keygen (certs, "intake", "service", NULL, NULL, NULL) == -EEXIST);
    CHECK (relais_security_keygen (certs, "x", "partner", NULL, NULL, NULL) == -EINVAL);
    CHECK (relais_security_keygen (certs, "Bad Name", "service", NULL, NULL, NULL) == -EINVAL);
    CHECK (relais_security_keygen (certs, "y", "root", NULL, NULL, NULL) == -EINVAL);

    CHECK_OK (relais_security_start (config, "intake", true));
    CHECK (relais_security_on ());
    relais_peer_t peer;
    CHECK (!relais_security_peer (NULL, &peer));        //  no User-Id: not in the roster
    relais_security_stop ();
    CHECK (!relais_security_on ());
    CHECK (relais_security_peer (NULL, &peer) && strcmp (peer.name, "anon") == 0);

    //  A process with no certificate of its own cannot turn CURVE on
    CHECK (relais_security_start (config, "router", false) == RELAIS_ECONFIG);

    //  A secret others can read: refused until it is private again
    char secret [700];
    snprintf (secret, sizeof secret, "%s/uasa.cert_secret", certs);
    CHECK (chmod (secret, 0640) == 0);
    CHECK (relais_security_start (config, "intake", true) == RELAIS_ECONFIG);
    CHECK (chmod (secret, 0600) == 0);
    CHECK_OK (relais_security_start (config, "intake", true));
    relais_security_stop ();
    relais_config_destroy (&config);
}

static void
test_off_by_default (void)
{
    relais_config_t *config = relais_config_load (NULL);
    CHECK (config);
    CHECK_OK (relais_security_declare (config));
    CHECK_OK (relais_security_start (config, "intake", true));
    CHECK (!relais_security_on ());
    relais_config_destroy (&config);
}

int
main (void)
{
    relais_log_init ("test_security");
    const char *tmp = getenv ("RELAIS_TEST_TMP");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    mkdir (tmp, 0700);
    snprintf (s_root, sizeof s_root, "%s/test_security.%d", tmp, (int) getpid ());
    CHECK (mkdir (s_root, 0700) == 0);
    RUN (test_roles);
    RUN (test_off_by_default);
    RUN (test_keygen_and_start);
    char cmd [600];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_root);
    CHECK (system (cmd) == 0);
    fprintf (stderr, "test_security: OK\n");
    return 0;
}
