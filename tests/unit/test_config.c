/*  =========================================================================
    test_config - relais_config: declared keys and defaults, refusals of
    unknown keys and bad values, typed getters, path resolution, children,
    syntax errors, defaults without a file

    Files are written under $RELAIS_TEST_TMP/test_config.<pid> (or /tmp),
    removed at the end.
    =========================================================================
*/
#include "relais_config.h"
#include "relais_log.h"
#include "relais_test.h"

#include <ftw.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_root [512];

static int
s_remove_one (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove (path);
}

//  Write text to name under the test folder; returns the file's path.
static const char *
s_write (const char *name, const char *text)
{
    static char path [700];
    snprintf (path, sizeof path, "%s/%s", s_root, name);
    FILE *file = fopen (path, "w");
    CHECK (file);
    CHECK (fputs (text, file) >= 0);
    CHECK (fclose (file) == 0);
    return path;
}

static const char s_sample [] =
    "#   A deployment of the test\n"
    "relais\n"
    "    data = \"state\"\n"
    "    services = \"intake\"\n"
    "intake\n"
    "    submit = \"tcp://127.0.0.1:7100\"\n"
    "    pub = \"ipc://run/intake-pub\"\n"
    "    heartbeat = 250ms\n"
    "    batch_max = 128\n"
    "    verbose = yes\n"
    "    store\n"
    "        path = intake\n"
    "        map_size = 16M\n"
    "    key_file = /etc/relais/intake.key\n"
    "    level2\n"
    "        repeat_window = 7d\n"
    "router\n"
    "    rules\n"
    "        uasa\n"
    "            topic = \"signal.\"\n"
    "        maraudes\n"
    "            topic = \"route.\"\n";

static const relais_config_key_t s_relais_keys [] = {
    { "data", "var", relais_check_path, "data folder" },
    { "services", "intake", NULL, "services to start" },
    { NULL, NULL, NULL, NULL }
};

static const relais_config_key_t s_intake_keys [] = {
    { "submit", "tcp://127.0.0.1:7100", relais_check_endpoint, "ROUTER for producers" },
    { "pub", "tcp://127.0.0.1:7101", relais_check_endpoint, "PUB" },
    { "fetch", "tcp://127.0.0.1:7102", relais_check_endpoint, "fetch" },
    { "heartbeat", "1s", relais_check_duration, "heartbeat" },
    { "batch_max", "4096", relais_check_uint, "batch" },
    { "verbose", "false", relais_check_bool, "chatty" },
    { "store/path", "intake", relais_check_path, "LMDB folder" },
    { "store/map_size", "64M", relais_check_size, "initial map" },
    { "store/map_max", "64G", relais_check_size, "map cap" },
    { "key_file", "intake.key", relais_check_path, "key" },
    { "level2/repeat_window", "7d", relais_check_duration, "window" },
    { "level2/tents_over", "3", relais_check_uint, "tents" },
    { NULL, NULL, NULL, NULL }
};

static const relais_config_key_t s_router_keys [] = {
    { "rules/*/topic", "signal.", NULL, "topic prefix of a rule" },
    { "rules/*/partner", NULL, NULL, "optional partner (wildcards are never required)" },
    { NULL, NULL, NULL, NULL }
};

static void
s_collect (const char *name, void *arg)
{
    char *list = (char *) arg;
    if (*list)
        strcat (list, ",");
    strcat (list, name);
}

static void
test_sample (void)
{
    const char *file = s_write ("relais.cfg", s_sample);
    relais_config_t *config = relais_config_load (file);
    CHECK (config);
    CHECK_STR (relais_config_file (config), file);
    CHECK_OK (relais_config_declare (config, "relais", s_relais_keys));
    CHECK_OK (relais_config_declare (config, "intake", s_intake_keys));
    CHECK_OK (relais_config_declare (config, "router", s_router_keys));

    //  The file's values, then the declared defaults, then NULL
    CHECK_STR (relais_config_str (config, "intake/submit"), "tcp://127.0.0.1:7100");
    CHECK_STR (relais_config_str (config, "intake/pub"), "ipc://run/intake-pub");
    CHECK_STR (relais_config_str (config, "intake/fetch"), "tcp://127.0.0.1:7102");
    CHECK_STR (relais_config_str (config, "intake/store/map_size"), "16M");
    CHECK_STR (relais_config_str (config, "intake/store/map_max"), "64G");
    CHECK_STR (relais_config_str (config, "router/rules/uasa/topic"), "signal.");
    CHECK_STR (relais_config_str (config, "router/rules/maraudes/topic"), "route.");
    CHECK_STR (relais_config_str (config, "router/rules/other/topic"), "signal.");
    CHECK (relais_config_str (config, "router/rules/uasa/partner") == NULL);
    CHECK (relais_config_str (config, "intake/nothing") == NULL);
    CHECK (relais_config_str (config, "nothing") == NULL);
    //  A folder of keys is not a value
    CHECK (relais_config_str (config, "intake/store") == NULL);

    //  Typed getters
    CHECK (relais_config_int (config, "intake/batch_max", 1) == 128);
    CHECK (relais_config_int (config, "intake/level2/tents_over", 1) == 3);
    CHECK (relais_config_int (config, "intake/submit", -5) == -5);     //  unparsable
    CHECK (relais_config_int (config, "intake/absent", 42) == 42);
    CHECK (relais_config_size (config, "intake/store/map_size", 1) == 16ULL << 20);
    CHECK (relais_config_size (config, "intake/store/map_max", 1) == 64ULL << 30);
    CHECK (relais_config_size (config, "intake/absent", 7) == 7);
    CHECK (relais_config_duration_ms (config, "intake/heartbeat", 1) == 250);
    CHECK (relais_config_duration_ms (config, "intake/level2/repeat_window", 1) == 7ULL * 86400000);
    CHECK (relais_config_duration_ms (config, "intake/submit", 9) == 9);
    CHECK (relais_config_bool (config, "intake/verbose", false) == true);
    CHECK (relais_config_bool (config, "intake/absent", true) == true);

    //  Paths: relative values under relais/data, itself under the file's folder
    char *path = relais_config_path (config, "intake/store/path");
    char expect [800];
    snprintf (expect, sizeof expect, "%s/state/intake", s_root);
    CHECK_STR (path, expect);
    free (path);
    path = relais_config_path (config, "intake/key_file");
    CHECK_STR (path, "/etc/relais/intake.key");
    free (path);
    path = relais_config_path (config, "relais/data");
    snprintf (expect, sizeof expect, "%s/state", s_root);
    CHECK_STR (path, expect);
    free (path);
    CHECK (relais_config_path (config, "intake/absent") == NULL);

    //  Children, in file order
    char list [256] = "";
    relais_config_children (config, "router/rules", s_collect, list);
    CHECK_STR (list, "uasa,maraudes");
    list [0] = 0;
    relais_config_children (config, NULL, s_collect, list);
    CHECK_STR (list, "relais,intake,router");
    list [0] = 0;
    relais_config_children (config, "intake/store", s_collect, list);
    CHECK_STR (list, "path,map_size");
    list [0] = 0;
    relais_config_children (config, "nowhere", s_collect, list);
    CHECK_STR (list, "");

    relais_config_destroy (&config);
    CHECK (config == NULL);
    relais_config_destroy (&config);
}

//  One bad file, one refusal
static void
s_refused (const char *text)
{
    const char *file = s_write ("bad.cfg", text);
    relais_config_t *config = relais_config_load (file);
    CHECK (config);
    CHECK (relais_config_declare (config, "intake", s_intake_keys) == RELAIS_ECONFIG);
    relais_config_destroy (&config);
}

static void
test_refusals (void)
{
    //  Unknown keys, at the top of the section and nested
    s_refused ("intake\n    submti = \"tcp://127.0.0.1:1\"\n");
    s_refused ("intake\n    store\n        mapsize = 1M\n");
    s_refused ("intake\n    bare\n");
    //  Bad values
    s_refused ("intake\n    submit = \"tcp:/x\"\n");
    s_refused ("intake\n    submit = \"tcp://host\"\n");
    s_refused ("intake\n    submit = \"tcp://host:99999\"\n");
    s_refused ("intake\n    pub = \"ipc://\"\n");
    s_refused ("intake\n    store\n        map_size = 12Q\n");
    s_refused ("intake\n    heartbeat = \"5 parsecs\"\n");
    s_refused ("intake\n    verbose = maybe\n");
    s_refused ("intake\n    batch_max = -3\n");
    s_refused ("intake\n    key_file = \"\"\n");
    //  A key given twice would silently lose its second value
    s_refused ("intake\n    batch_max = 1\n    batch_max = 2\n");
    s_refused ("intake\n    batch_max = 1\nintake\n    batch_max = 2\n");

    //  Sections nobody declares are not checked by declaring another
    const char *file = s_write ("other.cfg", "intake\n    batch_max = 5\nplans\n    whatever = 1\n");
    relais_config_t *config = relais_config_load (file);
    CHECK (config);
    CHECK_OK (relais_config_declare (config, "intake", s_intake_keys));
    CHECK_OK (relais_config_declare (config, "absent", s_relais_keys));
    relais_config_destroy (&config);

    //  Required keys (NULL default) must be present
    static const relais_config_key_t required [] = {
        { "secret", NULL, relais_check_path, "no default" },
        { NULL, NULL, NULL, NULL }
    };
    config = relais_config_load (file);
    CHECK (config);
    CHECK (relais_config_declare (config, "plans", required) == RELAIS_ECONFIG);
    relais_config_destroy (&config);
}

static void
test_load_failures (void)
{
    //  Syntax errors: czmq logs the line, we log the file; no crash
    CHECK (relais_config_load (s_write ("syntax1.cfg", "intake\n    pub = \"unterminated\n")) == NULL);
    CHECK (relais_config_load (s_write ("syntax2.cfg", "intake\n   pub = 1\n")) == NULL);
    CHECK (relais_config_load (s_write ("syntax3.cfg", "intake\n    pub 1 2\n")) == NULL);
    char missing [700];
    snprintf (missing, sizeof missing, "%s/missing.cfg", s_root);
    CHECK (relais_config_load (missing) == NULL);
    CHECK (relais_config_load (s_root) == NULL);            //  a folder
    //  An empty file is an empty configuration
    relais_config_t *config = relais_config_load (s_write ("empty.cfg", ""));
    CHECK (config);
    CHECK_OK (relais_config_declare (config, "intake", s_intake_keys));
    CHECK_STR (relais_config_str (config, "intake/heartbeat"), "1s");
    relais_config_destroy (&config);
}

static void
test_defaults_only (void)
{
    relais_config_t *config = relais_config_load (NULL);
    CHECK (config);
    CHECK_STR (relais_config_file (config), "");
    CHECK_OK (relais_config_declare (config, "intake", s_intake_keys));
    CHECK_STR (relais_config_str (config, "intake/pub"), "tcp://127.0.0.1:7101");
    CHECK (relais_config_size (config, "intake/store/map_size", 0) == 64ULL << 20);
    CHECK (relais_config_duration_ms (config, "intake/heartbeat", 0) == 1000);
    CHECK (relais_config_bool (config, "intake/verbose", true) == false);
    //  No file: relative paths resolve against cwd/var
    char cwd [512];
    CHECK (getcwd (cwd, sizeof cwd));
    char expect [700];
    snprintf (expect, sizeof expect, "%s/var/intake", cwd);
    char *path = relais_config_path (config, "intake/store/path");
    CHECK_STR (path, expect);
    free (path);
    //  Declared twice (cli declares every section): the latest default wins
    static const relais_config_key_t again [] = {
        { "pub", "tcp://127.0.0.1:9999", relais_check_endpoint, "PUB" },
        { NULL, NULL, NULL, NULL }
    };
    CHECK_OK (relais_config_declare (config, "intake", again));
    CHECK_STR (relais_config_str (config, "intake/pub"), "tcp://127.0.0.1:9999");
    CHECK_STR (relais_config_str (config, "intake/fetch"), "tcp://127.0.0.1:7102");
    char list [64] = "";
    relais_config_children (config, NULL, s_collect, list);
    CHECK_STR (list, "");
    relais_config_destroy (&config);
}

static void
test_parsers (void)
{
    uint64_t value;
    bool flag;
    CHECK (relais_parse_size ("123", &value) && value == 123);
    CHECK (relais_parse_size ("64K", &value) && value == 65536);
    CHECK (relais_parse_size ("10m", &value) && value == 10ULL << 20);
    CHECK (relais_parse_size ("2G", &value) && value == 2ULL << 30);
    CHECK (!relais_parse_size ("", &value));
    CHECK (!relais_parse_size ("12Q", &value));
    CHECK (!relais_parse_size ("1.5G", &value));
    CHECK (!relais_parse_size ("-1", &value));
    CHECK (!relais_parse_size (" 1", &value));
    CHECK (!relais_parse_size ("1KK", &value));
    CHECK (!relais_parse_size ("99999999999999999999", &value));
    CHECK (!relais_parse_size ("17179869184G", &value));    //  2^64 bytes
    CHECK (!relais_parse_size (NULL, &value));

    CHECK (relais_parse_duration_ms ("250", &value) && value == 250);
    CHECK (relais_parse_duration_ms ("250ms", &value) && value == 250);
    CHECK (relais_parse_duration_ms ("3s", &value) && value == 3000);
    CHECK (relais_parse_duration_ms ("10m", &value) && value == 600000);
    CHECK (relais_parse_duration_ms ("2h", &value) && value == 7200000);
    CHECK (relais_parse_duration_ms ("0", &value) && value == 0);
    CHECK (!relais_parse_duration_ms ("5 parsecs", &value));
    CHECK (!relais_parse_duration_ms ("5parsecs", &value));
    CHECK (!relais_parse_duration_ms ("s", &value));
    CHECK (!relais_parse_duration_ms ("1e3", &value));
    CHECK (!relais_parse_duration_ms ("999999999999999999d", &value));

    CHECK (relais_parse_bool ("true", &flag) && flag);
    CHECK (relais_parse_bool ("YES", &flag) && flag);
    CHECK (relais_parse_bool ("on", &flag) && flag);
    CHECK (relais_parse_bool ("1", &flag) && flag);
    CHECK (relais_parse_bool ("false", &flag) && !flag);
    CHECK (relais_parse_bool ("no", &flag) && !flag);
    CHECK (relais_parse_bool ("Off", &flag) && !flag);
    CHECK (relais_parse_bool ("0", &flag) && !flag);
    CHECK (!relais_parse_bool ("maybe", &flag));
    CHECK (!relais_parse_bool ("", &flag));

    char why [128];
    CHECK (relais_check_endpoint ("tcp://127.0.0.1:7100", why, sizeof why));
    CHECK (relais_check_endpoint ("tcp://*:7100", why, sizeof why));
    CHECK (relais_check_endpoint ("tcp://127.0.0.1:*", why, sizeof why));
    CHECK (relais_check_endpoint ("tcp://[::1]:7100", why, sizeof why));
    CHECK (relais_check_endpoint ("ipc:///tmp/x", why, sizeof why));
    CHECK (relais_check_endpoint ("inproc://bus", why, sizeof why));
    CHECK (!relais_check_endpoint ("tcp:/x", why, sizeof why));
    CHECK (strstr (why, "tcp://host:port"));
    CHECK (!relais_check_endpoint ("tcp://:80", why, sizeof why));
    CHECK (!relais_check_endpoint ("tcp://h:0", why, sizeof why));
    CHECK (!relais_check_endpoint ("tcp://h:8o", why, sizeof why));
    CHECK (!relais_check_endpoint ("udp://h:80", why, sizeof why));
    CHECK (!relais_check_endpoint ("", why, sizeof why));
    CHECK (relais_check_uint ("0", why, sizeof why));
    CHECK (!relais_check_uint ("1x", why, sizeof why));
    CHECK (!relais_check_uint ("", why, sizeof why));
    CHECK (!relais_check_path ("", why, sizeof why));
}

int
main (void)
{
    relais_log_init ("test_config");
    const char *tmp = getenv ("RELAIS_TEST_TMP");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    mkdir (tmp, 0700);
    char root [512];
    snprintf (root, sizeof root, "%s/test_config.%d", tmp, (int) getpid ());
    CHECK (mkdir (root, 0700) == 0);
    //  Absolute, so expected paths compare equal whatever RELAIS_TEST_TMP is
    CHECK (realpath (root, s_root));

    RUN (test_parsers);
    RUN (test_sample);
    RUN (test_refusals);
    RUN (test_load_failures);
    RUN (test_defaults_only);

    CHECK (nftw (s_root, s_remove_one, 16, FTW_DEPTH | FTW_PHYS) == 0);
    fprintf (stderr, "test_config: OK\n");
    return 0;
}
