/* Plugin loading, in the worker (or the -t check child), never the master:
 * a constructor in a bad .so must not be able to take the master down. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "plugin_load.h"

/* Anyone who can write the plugin, or rename another file into its folder,
 * can run code as the server: refuse both. */
static int plugin_check_permissions(const char *path, const struct stat *st, char *err,
                                    size_t errlen)
{
    if (!S_ISREG(st->st_mode)) {
        snprintf(err, errlen, "plugin %s: not a regular file", path);
        return -1;
    }
    if (st->st_mode & S_IWOTH) {
        snprintf(err, errlen, "plugin %s: refused, the file is writable by others (chmod o-w)",
                 path);
        return -1;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    else
        snprintf(dir, sizeof(dir), ".");
    struct stat ds;
    if (stat(dir, &ds) == 0 && (ds.st_mode & S_IWOTH)) {
        snprintf(err, errlen,
                 "plugin %s: refused, its directory %s is writable by others (chmod o-w)",
                 path, dir);
        return -1;
    }
    return 0;
}

int plugin_open(struct plugin *p, const char *path, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->path, sizeof(p->path), "%s", path);

    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "plugin %s: %s", path, strerror(errno));
        return -1;
    }
    if (plugin_check_permissions(path, &st, err, errlen) != 0)
        return -1;
    /* RTLD_LOCAL: every plugin defines model_run; none may see another's. */
    p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!p->dl) {
        snprintf(err, errlen, "plugin %s: %s", path, dlerror());
        return -1;
    }
    p->desc = dlsym(p->dl, IOS_DESCRIPTOR_SYMBOL);
    if (!p->desc) {
        snprintf(err, errlen,
                 "plugin %s: no '%s' descriptor symbol (not an ioserve model plugin? "
                 "declare it with IOS_MODEL)", path, IOS_DESCRIPTOR_SYMBOL);
        goto fail;
    }
    if (p->desc->magic != IOS_ABI_MAGIC) {
        snprintf(err, errlen, "plugin %s: bad descriptor magic 0x%08x (expected 0x%08x)",
                 path, p->desc->magic, IOS_ABI_MAGIC);
        goto fail;
    }
    /* plugin.h's version policy: the same major, and no newer a minor
     * than ours, since the plugin may read every field up to its minor. */
    if (p->desc->abi_major != IOS_ABI_MAJOR) {
        snprintf(err, errlen,
                 "plugin %s: built for ABI %u.%u, this ioserve speaks ABI %u.%u "
                 "(another major: rebuild the plugin against this ioserve's plugin.h)",
                 path, p->desc->abi_major, p->desc->abi_minor, IOS_ABI_MAJOR,
                 IOS_ABI_MINOR);
        goto fail;
    }
    if (p->desc->abi_minor > IOS_ABI_MINOR) {
        snprintf(err, errlen,
                 "plugin %s: needs ABI %u.%u or newer, this ioserve speaks ABI %u.%u "
                 "(it may read fields this host lacks: upgrade ioserve, or rebuild the "
                 "plugin against this ioserve's plugin.h)",
                 path, p->desc->abi_major, p->desc->abi_minor, IOS_ABI_MAJOR,
                 IOS_ABI_MINOR);
        goto fail;
    }
    if (!p->desc->name || !p->desc->summary) {
        snprintf(err, errlen, "plugin %s: descriptor lacks a name or summary", path);
        goto fail;
    }
    *(void **)&p->run = dlsym(p->dl, IOS_RUN_SYMBOL);
    if (!p->run) {
        snprintf(err, errlen, "plugin %s: no '%s' function exported", path,
                 IOS_RUN_SYMBOL);
        goto fail;
    }
    return 0;
fail:
    dlclose(p->dl);
    p->dl = NULL;
    p->desc = NULL;
    return -1;
}

void plugin_close(struct plugin *p)
{
    if (p->dl)
        dlclose(p->dl);
    p->dl = NULL;
    p->desc = NULL;
    p->run = NULL;
}
