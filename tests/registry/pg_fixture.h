/*
 * pg_fixture.h - a fresh PostgreSQL database per test binary.
 *
 * The server comes from env FEDFUSE_TEST_PG (a libpq conninfo, as printed
 * by deploy/pg.sh). ff_test_db_create makes a database with a unique name
 * on it; ff_test_db_drop drops it. The fixture also keeps a direct libpq
 * connection to the test database, for what a test does behind the
 * registry's back: counting rows, tampering with stored bytes.
 */
#ifndef FF_TEST_PG_FIXTURE_H
#define FF_TEST_PG_FIXTURE_H

#include <libpq-fe.h>

typedef struct ff_test_db {
    char name[64];     /* the database's name */
    char *conninfo;    /* conninfo of the test database (malloc'd) */
    PGconn *server;    /* connection to the database FEDFUSE_TEST_PG names */
    PGconn *conn;      /* connection to the test database */
} ff_test_db;

/*
 * Creates database "fft_<tag>_<pid>_<random>" and connects to it. Prints
 * why and returns -1 when FEDFUSE_TEST_PG is unset or the server refuses;
 * 0 on success. db is caller storage, filled here.
 */
int ff_test_db_create(ff_test_db *db, const char *tag);

/* Closes the connections and drops the database (WITH (FORCE), so that
 * leftover sessions do not block it). Safe on a db whose create failed. */
void ff_test_db_drop(ff_test_db *db);

/* Runs sql with n text parameters on the test database and returns the
 * first column of the first row as a number (count(*) and the like);
 * -1 on error, with the reason printed. */
long long ff_test_db_number(ff_test_db *db, const char *sql, int n,
                            const char *const *params);

/* Runs a statement with n text parameters on the test database; returns
 * the number of rows it affected, -1 on error (reason printed). */
long long ff_test_db_exec(ff_test_db *db, const char *sql, int n,
                          const char *const *params);

/* Returns the first column of the first row as a new string (caller
 * frees), NULL on error or no row. */
char *ff_test_db_text(ff_test_db *db, const char *sql, int n,
                      const char *const *params);

#endif
