/*
 * pg_fixture.c - see pg_fixture.h.
 */
#include "pg_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Appends " key='value'" to buf, quoting as libpq's conninfo syntax
 * wants (backslash before ' and \). Returns -1 when buf is too small. */
static int
conninfo_append(char *buf, size_t cap, const char *key, const char *value)
{
    size_t n = strlen(buf);
    int w = snprintf(buf + n, cap - n, "%s%s='", n ? " " : "", key);
    if (w < 0 || (size_t)w >= cap - n)
        return -1;
    n += (size_t)w;
    for (const char *p = value; *p; p++) {
        if (n + 3 >= cap)
            return -1;
        if (*p == '\'' || *p == '\\')
            buf[n++] = '\\';
        buf[n++] = *p;
    }
    if (n + 2 > cap)
        return -1;
    buf[n++] = '\'';
    buf[n] = '\0';
    return 0;
}

/* The server's conninfo (string or URI) with dbname replaced by name. */
static char *
conninfo_for(const char *server, const char *name)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(server, &msg);
    size_t cap = 4096;
    char *buf = calloc(1, cap);

    if (opts == NULL || buf == NULL) {
        fprintf(stderr, "FEDFUSE_TEST_PG is not a valid conninfo: %s\n",
                msg ? msg : "out of memory");
        PQfreemem(msg);
        PQconninfoFree(opts);
        free(buf);
        return NULL;
    }
    int bad = 0;
    for (PQconninfoOption *o = opts; o->keyword && !bad; o++) {
        if (o->val == NULL || strcmp(o->keyword, "dbname") == 0)
            continue;
        bad = conninfo_append(buf, cap, o->keyword, o->val);
    }
    if (!bad)
        bad = conninfo_append(buf, cap, "dbname", name);
    PQconninfoFree(opts);
    if (bad) {
        free(buf);
        return NULL;
    }
    return buf;
}

int
ff_test_db_create(ff_test_db *db, const char *tag)
{
    const char *server = getenv("FEDFUSE_TEST_PG");

    memset(db, 0, sizeof(*db));
    if (server == NULL || server[0] == '\0') {
        fprintf(stderr,
                "FAIL: FEDFUSE_TEST_PG is not set. These tests need a real "
                "PostgreSQL server:\n  deploy/pg.sh start /tmp/ffpg && "
                "export FEDFUSE_TEST_PG=\"$(deploy/pg.sh conninfo "
                "/tmp/ffpg)\"\n");
        return -1;
    }

    /* A name no other test binary or run will pick. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(db->name, sizeof(db->name), "fft_%s_%ld_%ld", tag,
             (long)getpid(), (long)(ts.tv_nsec ^ ts.tv_sec) & 0xffffff);

    db->server = PQconnectdb(server);
    if (PQstatus(db->server) != CONNECTION_OK) {
        fprintf(stderr, "FAIL: cannot connect to FEDFUSE_TEST_PG (%s): %s",
                server, PQerrorMessage(db->server));
        return -1;
    }
    char *ident = PQescapeIdentifier(db->server, db->name,
                                     strlen(db->name));
    char sql[160];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", ident ? ident : "");
    PQfreemem(ident);
    PGresult *res = PQexecParams(db->server, sql, 0, NULL, NULL, NULL, NULL,
                                 0);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "FAIL: %s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    if (!ok)
        return -1;

    db->conninfo = conninfo_for(server, db->name);
    if (db->conninfo == NULL)
        return -1;
    db->conn = PQconnectdb(db->conninfo);
    if (PQstatus(db->conn) != CONNECTION_OK) {
        fprintf(stderr, "FAIL: cannot connect to the test database: %s",
                PQerrorMessage(db->conn));
        return -1;
    }
    fprintf(stderr, "test database %s\n", db->name);
    return 0;
}

void
ff_test_db_drop(ff_test_db *db)
{
    PQfinish(db->conn);
    db->conn = NULL;
    if (db->server != NULL && PQstatus(db->server) == CONNECTION_OK &&
        db->conninfo != NULL) {
        char *ident = PQescapeIdentifier(db->server, db->name,
                                         strlen(db->name));
        char sql[192];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)",
                 ident ? ident : "");
        PQfreemem(ident);
        PGresult *res = PQexecParams(db->server, sql, 0, NULL, NULL, NULL,
                                     NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            fprintf(stderr, "warning: %s: %s", sql,
                    PQresultErrorMessage(res));
        PQclear(res);
    }
    PQfinish(db->server);
    db->server = NULL;
    free(db->conninfo);
    db->conninfo = NULL;
}

/* Runs sql; returns the result when its status is `expect`, else prints
 * the reason and returns NULL. */
static PGresult *
run(ff_test_db *db, const char *sql, int n, const char *const *params,
    ExecStatusType expect)
{
    PGresult *res = PQexecParams(db->conn, sql, n, NULL, params, NULL, NULL,
                                 0);
    if (PQresultStatus(res) != expect) {
        fprintf(stderr, "test query failed: %s: %s", sql,
                PQresultErrorMessage(res));
        PQclear(res);
        return NULL;
    }
    return res;
}

long long
ff_test_db_number(ff_test_db *db, const char *sql, int n,
                  const char *const *params)
{
    PGresult *res = run(db, sql, n, params, PGRES_TUPLES_OK);
    long long v = -1;

    if (res != NULL && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

long long
ff_test_db_exec(ff_test_db *db, const char *sql, int n,
                const char *const *params)
{
    PGresult *res = run(db, sql, n, params, PGRES_COMMAND_OK);
    long long v = -1;

    if (res != NULL)
        v = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return v;
}

char *
ff_test_db_text(ff_test_db *db, const char *sql, int n,
                const char *const *params)
{
    PGresult *res = run(db, sql, n, params, PGRES_TUPLES_OK);
    char *s = NULL;

    if (res != NULL && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        s = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return s;
}
