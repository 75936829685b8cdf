/*
 * attach_dlopen.c - modules loaded after attach: this program dlopens
 * libreqid.so and attaches itself (as attach_in_process.c does), then loads
 * a plugin by its bare name, found only through this program's own RUNPATH
 * ($ORIGIN/plugins: a stub that called dlopen from the shim would search
 * the shim's, and fail), calls it through dlsym, closes it, loads it again,
 * detaches, and loads it once more. The plugin writes its lines to fd 2
 * with its own calls to write: they carry the id field only if the shim
 * patched its GOT. test_attach.py builds it (and the plugin) three ways and
 * checks stdout and stderr byte for byte.
 *
 * Must never write anything to fd 2 but the log lines under test.
 */
#include <dlfcn.h>
#include <stdio.h>

typedef int (*entry_fn)(const char *);
typedef void (*plugin_fn)(const char *);
typedef void *(*dlopen_fn)(const char *, int);

/* dlopen as the program's GOT has it now (see attach_in_process.c). */
static __attribute__((noinline)) dlopen_fn bound_dlopen(void)
{
	dlopen_fn volatile f = dlopen;
	return f;
}

static plugin_fn load(void **handle)
{
	*handle = dlopen("libattach_plugin.so", RTLD_NOW);
	return *handle ? (plugin_fn)dlsym(*handle, "plugin_log") : NULL;
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	dlopen_fn libc_dlopen = (dlopen_fn)dlsym(RTLD_DEFAULT, "dlopen");
	void *lib = dlopen(argv[1], RTLD_NOW);
	entry_fn attach = lib ? (entry_fn)dlsym(lib, "reqid_attach") : NULL;
	entry_fn detach = lib ? (entry_fn)dlsym(lib, "reqid_detach") : NULL;
	if (!attach || !detach)
		return 1;
	int a = attach("REQID_LOG_FDS=2\nREQID_FIELD=rid\nREQID_OUTSIDE=out\n");
	int redirected = bound_dlopen() != libc_dlopen;
	void *plugin;
	plugin_fn log = load(&plugin);
	if (!log) {
		printf("dlopen: %s\n", dlerror());
		return 1;
	}
	log("first load");
	dlclose(plugin);
	log = load(&plugin);
	if (!log)
		return 1;
	log("second load");
	int d = detach("");
	int restored = bound_dlopen() == libc_dlopen;
	log("detached");
	dlclose(plugin);
	log = load(&plugin);
	if (!log)
		return 1;
	log("loaded detached");
	printf("attach=%d redirected=%d detach=%d restored=%d\n", a, redirected, d, restored);
	return 0;
}
