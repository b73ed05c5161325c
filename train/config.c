/* config.c — the configuration table turned into defaults, parser, overrides, printer and help
 * (see config.h). */
#include "train/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum type { T_STR, T_INT, T_FLOAT, T_BOOL, T_ENUM } type;

typedef struct key_desc {
    const char *section, *key;
    type t;
    const char *def_s;  /* STR, ENUM */
    double def_n;       /* INT, FLOAT, BOOL */
    double lo, hi;      /* INT, FLOAT */
    const char *allowed; /* ENUM: "a|b|c" */
    const char *help;
    size_t offset, size;
} key_desc;

#define SZ(s, k) sizeof(((bk_config *)0)->s##_##k)
#define OFF(s, k) offsetof(bk_config, s##_##k)
#define D_STR(s, k, def, lo, hi, help) {#s, #k, T_STR, def, 0, 0, 0, NULL, help, OFF(s, k), SZ(s, k)},
#define D_INT(s, k, def, lo, hi, help) {#s, #k, T_INT, NULL, def, lo, hi, NULL, help, OFF(s, k), SZ(s, k)},
#define D_FLOAT(s, k, def, lo, hi, help) {#s, #k, T_FLOAT, NULL, def, lo, hi, NULL, help, OFF(s, k), SZ(s, k)},
#define D_BOOL(s, k, def, lo, hi, help) {#s, #k, T_BOOL, NULL, def, 0, 1, NULL, help, OFF(s, k), SZ(s, k)},
#define D_ENUM(s, k, def, lo, hi, help) {#s, #k, T_ENUM, def, 0, 0, 0, lo, help, OFF(s, k), SZ(s, k)},
#define D_(s, k, type, def, lo, hi, help) D_##type(s, k, def, lo, hi, help)

static const key_desc keys[BK_CONFIG_NKEYS] = {BK_CONFIG_KEYS(D_)};

static int find(const char *section, const char *key) {
    for (int i = 0; i < BK_CONFIG_NKEYS; i++)
        if (!strcmp(keys[i].section, section) && !strcmp(keys[i].key, key)) return i;
    return -1;
}

const char *bk_config_source(const bk_config *c, const char *section, const char *key) {
    int i = find(section, key);
    return i < 0 ? "?" : c->source[i];
}

/* Formats key i's current value. */
static void value_str(const bk_config *c, int i, char *buf, size_t len) {
    const key_desc *k = &keys[i];
    const char *p = (const char *)c + k->offset;
    switch (k->t) {
    case T_STR:
    case T_ENUM: snprintf(buf, len, "%s", p); break;
    case T_INT: snprintf(buf, len, "%lld", (long long)*(const int64_t *)p); break;
    case T_FLOAT: { /* the shortest text that reads back as the same double */
        const double x = *(const double *)p;
        for (int digits = 6; digits <= 17; digits++) {
            snprintf(buf, len, "%.*g", digits, x);
            if (strtod(buf, NULL) == x) break;
        }
        break;
    }
    case T_BOOL: snprintf(buf, len, "%s", *(const bool *)p ? "true" : "false"); break;
    }
}

void bk_config_defaults(bk_config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < BK_CONFIG_NKEYS; i++) {
        const key_desc *k = &keys[i];
        char *p = (char *)c + k->offset;
        switch (k->t) {
        case T_STR:
        case T_ENUM: snprintf(p, k->size, "%s", k->def_s); break;
        case T_INT: *(int64_t *)p = (int64_t)k->def_n; break;
        case T_FLOAT: *(double *)p = k->def_n; break;
        case T_BOOL: *(bool *)p = k->def_n != 0; break;
        }
        snprintf(c->source[i], sizeof c->source[i], "default");
    }
}

/* Edit distance, for "did you mean". */
static int distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b), d[64][64];
    if (la >= 63 || lb >= 63) return 99;
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

static void suggest(const char *section, const char *key, char *out, size_t len) {
    int best = 3, which = -1;
    char want[128];
    snprintf(want, sizeof want, "%s.%s", section, key);
    const int wl = (int)strlen(want);
    for (int i = 0; i < BK_CONFIG_NKEYS; i++) {
        char full[128];
        snprintf(full, sizeof full, "%s.%s", keys[i].section, keys[i].key);
        if (abs((int)strlen(full) - wl) >= best) continue; /* the distance is at least that */
        int d = distance(full, want);
        if (d < best) best = d, which = i;
    }
    if (which >= 0) snprintf(out, len, " (did you mean %s.%s?)", keys[which].section, keys[which].key);
    else out[0] = '\0';
}

/* Sets key (section, name) from text; `where` names the origin for messages and sources. */
static bk_status assign(bk_config *c, const char *section, const char *name, const char *raw,
                        const char *where) {
    int i = find(section, name);
    if (i < 0) {
        char hint[160];
        suggest(section, name, hint, sizeof hint);
        bool section_known = false;
        for (int j = 0; j < BK_CONFIG_NKEYS; j++) section_known |= !strcmp(keys[j].section, section);
        if (!section_known)
            return bk_fail(BK_ERR_ARG, "%s: unknown section [%s]%s (sections: run, data, model, train, loss, gan; "
                           "train --help-config lists every key)", where, section, hint);
        return bk_fail(BK_ERR_ARG, "%s: unknown key \"%s\" in [%s]%s; train --help-config lists every key", where,
                       name, section, hint);
    }
    /* the value without surrounding spaces and a trailing comment: ';' or '#' at its start or
     * after a space, in a file as on the command line, so that every value stored prints as a
     * line that reads back as the same value */
    char v[1024];
    if (strlen(raw) >= sizeof v)
        return bk_fail(BK_ERR_ARG, "%s: the value of %s.%s is longer than %zu characters", where, section, name,
                       sizeof v - 1);
    snprintf(v, sizeof v, "%s", raw);
    for (char *h = v; *h; h++)
        if ((*h == '#' || *h == ';') && (h == v || isspace((unsigned char)h[-1]))) {
            *h = '\0';
            break;
        }
    size_t n = strlen(v);
    while (n && isspace((unsigned char)v[n - 1])) v[--n] = '\0';
    char *s = v;
    while (isspace((unsigned char)*s)) s++;
    /* a line break (possible in a --set argument) would split the printed value in two */
    for (const char *q = s; *q; q++)
        if ((unsigned char)*q < 0x20 && *q != '\t')
            return bk_fail(BK_ERR_ARG, "%s: the value of %s.%s holds a control character (byte 0x%02x at %d); "
                           "a value is one line of text", where, section, name, (unsigned char)*q, (int)(q - s) + 1);
    const key_desc *k = &keys[i];
    char *p = (char *)c + k->offset;
    char *end;
    switch (k->t) {
    case T_STR:
        if (strlen(s) >= k->size)
            return bk_fail(BK_ERR_ARG, "%s: %s.%s is longer than %zu characters", where, section, name, k->size - 1);
        snprintf(p, k->size, "%s", s);
        break;
    case T_ENUM: {
        bool ok = false;
        size_t sl = strlen(s);
        for (const char *a = k->allowed; a && *a;) {
            const char *bar = strchr(a, '|');
            size_t al = bar ? (size_t)(bar - a) : strlen(a);
            ok |= al == sl && !strncmp(a, s, sl);
            a = bar ? bar + 1 : NULL;
        }
        if (!ok)
            return bk_fail(BK_ERR_ARG, "%s: %s.%s = \"%s\" is not one of %s", where, section, name, s, k->allowed);
        snprintf(p, k->size, "%s", s);
        break;
    }
    case T_INT: {
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (!*s || *end || errno)
            return bk_fail(BK_ERR_ARG, "%s: %s.%s = \"%s\" is not a whole number", where, section, name, s);
        if (x < k->lo || x > k->hi)
            return bk_fail(BK_ERR_ARG, "%s: %s.%s = %lld is outside [%.0f, %.0f]", where, section, name, x, k->lo, k->hi);
        *(int64_t *)p = x;
        break;
    }
    case T_FLOAT: {
        errno = 0;
        double x = strtod(s, &end);
        if (!*s || *end || errno || !isfinite(x))
            return bk_fail(BK_ERR_ARG, "%s: %s.%s = \"%s\" is not a number", where, section, name, s);
        if (x < k->lo || x > k->hi)
            return bk_fail(BK_ERR_ARG, "%s: %s.%s = %g is outside [%g, %g]", where, section, name, x, k->lo, k->hi);
        *(double *)p = x;
        break;
    }
    case T_BOOL: {
        const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
        int val = -1;
        for (int j = 0; j < 4; j++) {
            if (!strcasecmp(s, yes[j])) val = 1;
            if (!strcasecmp(s, no[j])) val = 0;
        }
        if (val < 0)
            return bk_fail(BK_ERR_ARG, "%s: %s.%s = \"%s\" is not true or false", where, section, name, s);
        *(bool *)p = val;
        break;
    }
    }
    snprintf(c->source[i], sizeof c->source[i], "%s", where);
    return BK_OK;
}

/* ---------------------------------------------------------------- INI files */

/* The INI dialect of inih's defaults, read here rather than through libinih because Debian's
 * libinih is built with a fixed 200-character line (a longer data.root was cut in two and the
 * rest reported as a malformed line). "[section]", "key = value"
 * or "key: value", whole-line comments starting with ';' or '#', an inline comment after
 * whitespace and ';' (assign() also ends a value at ';' or '#' after whitespace), a UTF-8
 * byte-order mark, lines of any length (values of up to 1023 characters). A NUL byte, or
 * anything else, is a malformed line, and the first error stops parsing. */
typedef struct parse_state {
    const char *origin;
    int line;              /* of the line being parsed */
    bk_ini_handler handler;
    void *user;
    FILE *f;               /* reading a FILE or a string */
    const char *text;
    char *buf;             /* the current line (owned, grown by getline) */
    size_t cap;
    bool nul;              /* the current line holds a NUL byte (a file only) */
} parse_state;

/* The next line without its newline in s->buf; false at the end. */
static bool next_line(parse_state *s) {
    if (s->f) {
        ssize_t n = getline(&s->buf, &s->cap, s->f);
        if (n < 0) return false;
        s->nul = memchr(s->buf, '\0', (size_t)n) != NULL; /* C strings would end there, silently */
        while (n && (s->buf[n - 1] == '\n' || s->buf[n - 1] == '\r')) s->buf[--n] = '\0';
    } else {
        if (!s->text || !*s->text) return false;
        size_t n = strcspn(s->text, "\n");
        if (n + 1 > s->cap) {
            char *b = realloc(s->buf, n + 1);
            if (!b) return false;
            s->buf = b;
            s->cap = n + 1;
        }
        memcpy(s->buf, s->text, n);
        s->buf[n] = '\0';
        if (n && s->buf[n - 1] == '\r') s->buf[n - 1] = '\0';
        s->text += n + (s->text[n] == '\n');
    }
    s->line++;
    return true;
}

static char *trim(char *p) {
    while (isspace((unsigned char)*p)) p++;
    size_t n = strlen(p);
    while (n && isspace((unsigned char)p[n - 1])) p[--n] = '\0';
    return p;
}

static bk_status parse(parse_state *s) {
    char section[256] = "";
    char where[600];
    while (next_line(s)) {
        char *p = s->buf;
        if (s->line == 1 && !strncmp(p, "\xEF\xBB\xBF", 3)) p += 3;
        p = trim(p);
        snprintf(where, sizeof where, "%s:%d", s->origin, s->line);
        if (s->nul)
            return bk_fail(BK_ERR_ARG, "%s: a NUL byte; this is a binary file, not an INI configuration", where);
        if (!*p || *p == ';' || *p == '#') continue;
        if (*p == '[') {
            char *close = strchr(p, ']');
            char *rest = close ? trim(close + 1) : NULL;
            if (!close || (*rest && *rest != ';' && *rest != '#') || (size_t)(close - p - 1) >= sizeof section)
                return bk_fail(BK_ERR_ARG, "%s: not a valid INI line (expected [section] or key = value)", where);
            *close = '\0';
            snprintf(section, sizeof section, "%s", trim(p + 1));
            continue;
        }
        char *eq = p + strcspn(p, "=:");
        if (!*eq || eq == p)
            return bk_fail(BK_ERR_ARG, "%s: not a valid INI line (expected [section] or key = value)", where);
        *eq = '\0';
        char *value = eq + 1;
        for (char *c = value; (c = strchr(c, ';')); c++)
            if (c > value && isspace((unsigned char)c[-1])) {
                *c = '\0';
                break;
            }
        bk_status st = s->handler(s->user, section, trim(p), trim(value), where);
        if (st != BK_OK) return st;
    }
    if (s->f && ferror(s->f)) return bk_fail(BK_ERR_IO, "%s: cannot read it after line %d", s->origin, s->line);
    return BK_OK;
}

bk_status bk_ini_parse(const char *path, bk_ini_handler handler, void *user) {
    FILE *f = fopen(path, "r");
    if (!f) return bk_fail(BK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    parse_state s = {.origin = path, .f = f, .handler = handler, .user = user};
    bk_status st = parse(&s);
    free(s.buf);
    fclose(f);
    return st;
}

/* The config's own handler: each key once, then assign(). */
typedef struct config_state {
    bk_config *c;
    int seen_line[BK_CONFIG_NKEYS];
} config_state;

static bk_status config_value(void *user, const char *section, const char *name, const char *value,
                              const char *where) {
    config_state *cs = user;
    int i = find(section, name);
    int line = atoi(strrchr(where, ':') ? strrchr(where, ':') + 1 : "0");
    if (i >= 0 && cs->seen_line[i])
        return bk_fail(BK_ERR_ARG, "%s: %s.%s is set twice (also on line %d)", where, section, name, cs->seen_line[i]);
    bk_status st = assign(cs->c, section, name, value, where);
    if (i >= 0) cs->seen_line[i] = line;
    return st;
}

bk_status bk_config_read(bk_config *c, FILE *f, const char *origin) {
    config_state cs = {.c = c};
    parse_state s = {.origin = origin, .f = f, .handler = config_value, .user = &cs};
    bk_status st = parse(&s);
    free(s.buf);
    return st;
}

bk_status bk_config_load(bk_config *c, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return bk_fail(BK_ERR_IO, "%s: cannot open the configuration: %s", path, strerror(errno));
    bk_status st = bk_config_read(c, f, path);
    fclose(f);
    return st;
}

bk_status bk_config_parse_text(bk_config *c, const char *text, const char *origin) {
    config_state cs = {.c = c};
    parse_state s = {.origin = origin, .text = text, .handler = config_value, .user = &cs};
    bk_status st = parse(&s);
    free(s.buf);
    return st;
}

bk_status bk_config_set(bk_config *c, const char *assignment) {
    char buf[1024], where[1100];
    if (strlen(assignment) >= sizeof buf)
        return bk_fail(BK_ERR_ARG, "--set %.60s...: longer than %zu characters", assignment, sizeof buf - 1);
    snprintf(buf, sizeof buf, "%s", assignment);
    snprintf(where, sizeof where, "--set %s", assignment);
    char *eq = strchr(buf, '='), *dot = strchr(buf, '.');
    if (!eq || !dot || dot > eq)
        return bk_fail(BK_ERR_ARG, "%s: expected --set section.key=value", where);
    *eq = '\0';
    *dot = '\0';
    char *section = buf, *key = dot + 1;
    for (char *p = key + strlen(key); p > key && isspace((unsigned char)p[-1]);) *--p = '\0';
    while (isspace((unsigned char)*section)) section++;
    bk_status st = assign(c, section, key, eq + 1, "--set");
    if (st != BK_OK && strncmp(bk_last_error(), "--set:", 6) == 0) {
        /* name the whole argument, not just "--set" */
        char msg[1200];
        snprintf(msg, sizeof msg, "%s", bk_last_error() + 6);
        return bk_fail(st, "%s:%s", where, msg);
    }
    return st;
}

void bk_config_print(const bk_config *c, FILE *f, bool with_sources) {
    const char *section = "";
    for (int i = 0; i < BK_CONFIG_NKEYS; i++) {
        if (strcmp(section, keys[i].section)) {
            section = keys[i].section;
            fprintf(f, "%s[%s]\n", i ? "\n" : "", section);
        }
        char v[600];
        value_str(c, i, v, sizeof v);
        if (with_sources && strcmp(c->source[i], "default"))
            fprintf(f, "%s = %s ; %s\n", keys[i].key, v, c->source[i]);
        else
            fprintf(f, "%s = %s\n", keys[i].key, v);
    }
}

static const char *type_name(const key_desc *k) {
    switch (k->t) {
    case T_STR: return "string";
    case T_INT: return "integer";
    case T_FLOAT: return "number";
    case T_BOOL: return "true/false";
    case T_ENUM: return k->allowed;
    }
    return "";
}

void bk_config_help(FILE *f, bool markdown) {
    bk_config d;
    bk_config_defaults(&d);
    const char *section = "";
    if (markdown)
        fprintf(f, "# Configuration keys\n\nGenerated by `train --help-config --markdown` from the key table in "
                   "`train/config.h`. Every key has a default; a config file sets only what differs.\n"
                   "Unknown keys, wrong types and values out of range stop `train` with the file and line.\n");
    for (int i = 0; i < BK_CONFIG_NKEYS; i++) {
        const key_desc *k = &keys[i];
        char v[600], range[64] = "";
        value_str(&d, i, v, sizeof v);
        if (k->t == T_INT) snprintf(range, sizeof range, "%.0f..%.0f", k->lo, k->hi);
        if (k->t == T_FLOAT) snprintf(range, sizeof range, "%g..%g", k->lo, k->hi);
        if (strcmp(section, k->section)) {
            section = k->section;
            if (markdown)
                fprintf(f, "\n## [%s]\n\n| key | type | default | range | meaning |\n|---|---|---|---|---|\n", section);
            else
                fprintf(f, "\n[%s]\n", section);
        }
        if (markdown)
            fprintf(f, "| `%s` | %s | `%s` | %s | %s |\n", k->key, type_name(k), v, range, k->help);
        else
            fprintf(f, "  %-16s %-12s default %-10s %-16s %s\n", k->key, k->t == T_ENUM ? "choice" : type_name(k), v[0] ? v : "\"\"",
                    range, k->help);
        if (!markdown && k->t == T_ENUM) fprintf(f, "  %-16s one of %s\n", "", k->allowed);
    }
}
