/* ropedist checkpoints in HDF5: the reader that ranks use to take their own slices, and the
 * writer that the converter uses (see ckpt.h for the layout).
 *
 * The reader selects a hyperslab of the file dataspace so that only the requested rows and
 * columns are read, then widens bf16/fp16 to fp32 on the host. The writer never touches the
 * destination until the whole file is written and closed: it writes "path.tmp.<pid>" and moves
 * it into place at finish (with link() when overwriting is not allowed, so that a file that
 * appeared meanwhile is still refused). HDF5's automatic error printing is turned off; every
 * failure comes back as an rd_status with a message naming the file and the tensor. */
#include "runtime/ckpt.h"

#include <errno.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

#define CKPT_NAME_MAX 1024

struct rd_ckpt {
    hid_t file;
    char *path;
    uint64_t bytes_read;
};

struct rd_ckpt_writer {
    hid_t file;
    bool force;
    char *path;
    char *tmp;
    char last_err[512];
};

#define set_err rd_err_set

static void hdf5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* "model.layers.0.q_proj.weight" -> "/model/layers/0/q_proj/weight". Names must be non-empty
 * dotted components without '/'. */
static int name_to_path(const char *name, char *buf, size_t n)
{
    size_t len = strlen(name);
    if (len == 0 || len + 2 > n || name[0] == '.' || name[len - 1] == '.') return 0;
    buf[0] = '/';
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '/' || (c == '.' && name[i + 1] == '.')) return 0;
        buf[i + 1] = c == '.' ? '/' : c;
    }
    buf[len + 1] = 0;
    return 1;
}

/* ---- reader ---- */

rd_status rd_ckpt_open(const char *path, struct rd_ckpt **out, char *err, int err_len)
{
    if (err && err_len > 0) err[0] = 0;
    if (!path || !out) {
        set_err(err, err_len, "rd_ckpt_open: NULL argument");
        return RD_ERR_INVALID_ARG;
    }
    *out = NULL;
    hdf5_quiet();
    if (access(path, R_OK) != 0) {
        set_err(err, err_len, "%s: cannot open checkpoint: %s", path, strerror(errno));
        return RD_ERR_IO;
    }
    if (H5Fis_hdf5(path) <= 0) {
        set_err(err, err_len, "%s: not an HDF5 file", path);
        return RD_ERR_FORMAT;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        set_err(err, err_len, "%s: HDF5 cannot open the file", path);
        return RD_ERR_HDF5;
    }
    int version = -1;
    hid_t a = H5Aexists(f, "ropedist_format") > 0 ? H5Aopen(f, "ropedist_format", H5P_DEFAULT)
                                                   : H5I_INVALID_HID;
    if (a < 0 || H5Aread(a, H5T_NATIVE_INT, &version) < 0) {
        if (a >= 0) H5Aclose(a);
        H5Fclose(f);
        set_err(err, err_len, "%s: not a ropedist checkpoint (no ropedist_format attribute)",
                path);
        return RD_ERR_FORMAT;
    }
    H5Aclose(a);
    if (version != RD_CKPT_FORMAT) {
        H5Fclose(f);
        set_err(err, err_len, "%s: checkpoint format %d, this build reads format %d", path,
                version, RD_CKPT_FORMAT);
        return RD_ERR_UNSUPPORTED;
    }
    struct rd_ckpt *ck = calloc(1, sizeof *ck);
    if (!ck || !(ck->path = strdup(path))) {
        free(ck);
        H5Fclose(f);
        set_err(err, err_len, "%s: out of memory", path);
        return RD_ERR_OOM;
    }
    ck->file = f;
    *out = ck;
    return RD_OK;
}

void rd_ckpt_close(struct rd_ckpt *ck)
{
    if (!ck) return;
    if (ck->file >= 0) H5Fclose(ck->file);
    free(ck->path);
    free(ck);
}

rd_status rd_ckpt_config_json(struct rd_ckpt *ck, char **json_out, char *err, int err_len)
{
    if (err && err_len > 0) err[0] = 0;
    if (!ck || !json_out) return RD_ERR_INVALID_ARG;
    *json_out = NULL;
    rd_status rc = RD_ERR_HDF5;
    hid_t a = H5I_INVALID_HID, ft = H5I_INVALID_HID, mt = H5I_INVALID_HID,
          sp = H5I_INVALID_HID;
    if (H5Aexists(ck->file, "config") <= 0) {
        set_err(err, err_len, "%s: the checkpoint has no \"config\" attribute (the model config "
                "as a JSON string); give the config with --config config.json --checkpoint %s",
                ck->path, ck->path);
        return RD_ERR_FORMAT;
    }
    if ((a = H5Aopen(ck->file, "config", H5P_DEFAULT)) < 0 || (ft = H5Aget_type(a)) < 0 ||
        (sp = H5Aget_space(a)) < 0)
        goto done;
    if (H5Tget_class(ft) != H5T_STRING || H5Sget_simple_extent_npoints(sp) != 1) {
        set_err(err, err_len, "%s: the checkpoint's \"config\" attribute is not one string (the "
                "model config as JSON); give the config with --config config.json --checkpoint %s",
                ck->path, ck->path);
        rc = RD_ERR_FORMAT;
        goto done;
    }
    htri_t vlen = H5Tis_variable_str(ft);
    if (vlen < 0 || (mt = H5Tcopy(H5T_C_S1)) < 0) goto done;
    if (vlen) {
        char *s = NULL;
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Tset_cset(mt, H5Tget_cset(ft)) < 0 ||
            H5Aread(a, mt, &s) < 0)
            goto done;
        *json_out = strdup(s ? s : "");
        H5free_memory(s);
    } else {
        size_t n = H5Tget_size(ft);
        char *s = calloc(n + 1, 1);
        if (!s) {
            rc = RD_ERR_OOM;
            goto done;
        }
        if (H5Tset_size(mt, n + 1) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 ||
            H5Aread(a, mt, s) < 0) {
            free(s);
            goto done;
        }
        *json_out = s;
    }
    rc = *json_out ? RD_OK : RD_ERR_OOM;
done:
    if (rc == RD_ERR_HDF5)
        set_err(err, err_len, "%s: HDF5 cannot read the \"config\" attribute", ck->path);
    if (rc == RD_ERR_OOM) set_err(err, err_len, "%s: out of memory reading the config", ck->path);
    if (mt >= 0) H5Tclose(mt);
    if (sp >= 0) H5Sclose(sp);
    if (ft >= 0) H5Tclose(ft);
    if (a >= 0) H5Aclose(a);
    return rc;
}

/* Opens a tensor's dataset and reports its shape and element type. */
static rd_status open_tensor(struct rd_ckpt *ck, const char *name, hid_t *dset, int *ndim,
                             int64_t dims[2], enum rd_dtype *dtype, char *err, int err_len)
{
    char p[CKPT_NAME_MAX];
    if (!name_to_path(name, p, sizeof p)) {
        set_err(err, err_len, "%s: invalid tensor name '%s'", ck->path, name);
        return RD_ERR_INVALID_ARG;
    }
    /* H5Lexists fails on a missing intermediate group, so walk the path one link at a time */
    for (char *s = strchr(p + 1, '/');; s = strchr(s + 1, '/')) {
        if (s) *s = 0;
        htri_t ex = H5Lexists(ck->file, p, H5P_DEFAULT);
        if (s) *s = '/';
        if (ex <= 0) {
            set_err(err, err_len, "%s: tensor '%s' not found in checkpoint", ck->path, name);
            return RD_ERR_FORMAT;
        }
        if (!s) break;
    }
    hid_t d = H5Dopen2(ck->file, p, H5P_DEFAULT);
    if (d < 0) {
        set_err(err, err_len, "%s: '%s' is not a tensor dataset", ck->path, name);
        return RD_ERR_FORMAT;
    }
    rd_status rc = RD_OK;
    hid_t sp = H5Dget_space(d), ty = H5Dget_type(d);
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t hd[2] = {1, 1};
    if (nd < 1 || nd > 2 || H5Sget_simple_extent_dims(sp, hd, NULL) < 0) {
        set_err(err, err_len, "%s: tensor '%s' has %d dims (1 or 2 supported)", ck->path, name,
                nd);
        rc = RD_ERR_FORMAT;
        goto done;
    }
    H5T_class_t cls = ty >= 0 ? H5Tget_class(ty) : H5T_NO_CLASS;
    size_t sz = ty >= 0 ? H5Tget_size(ty) : 0;
    if (cls == H5T_FLOAT && sz == 4) {
        *dtype = RD_DTYPE_F32;
    } else if (cls == H5T_INTEGER && sz == 2) {
        char tag[16] = "";
        hid_t a = H5I_INVALID_HID, at = H5I_INVALID_HID;
        if (H5Aexists(d, "dtype") > 0 && (a = H5Aopen(d, "dtype", H5P_DEFAULT)) >= 0 &&
            (at = H5Aget_type(a)) >= 0 && H5Tget_class(at) == H5T_STRING) {
            hid_t mt = H5Tcopy(H5T_C_S1);
            /* HDF5 does not convert between ASCII and UTF-8, so read in the stored cset */
            H5Tset_cset(mt, H5Tget_cset(at));
            if (H5Tis_variable_str(at) > 0) {
                char *s = NULL;
                H5Tset_size(mt, H5T_VARIABLE);
                if (H5Aread(a, mt, &s) >= 0 && s) snprintf(tag, sizeof tag, "%s", s);
                H5free_memory(s);
            } else if (H5Tget_size(at) < sizeof tag) {
                H5Tset_size(mt, sizeof tag);
                H5Tset_strpad(mt, H5T_STR_NULLTERM);
                if (H5Aread(a, mt, tag) < 0) tag[0] = 0;
            }
            H5Tclose(mt);
        }
        if (at >= 0) H5Tclose(at);
        if (a >= 0) H5Aclose(a);
        int t = rd_dtype_parse(tag);
        if (t != RD_DTYPE_BF16 && t != RD_DTYPE_F16) {
            set_err(err, err_len,
                    "%s: tensor '%s' is 16-bit but its dtype attribute ('%s') is not bf16/fp16",
                    ck->path, name, tag);
            rc = RD_ERR_FORMAT;
            goto done;
        }
        *dtype = (enum rd_dtype)t;
    } else {
        set_err(err, err_len, "%s: tensor '%s' has an unsupported element type", ck->path, name);
        rc = RD_ERR_UNSUPPORTED;
        goto done;
    }
    *ndim = nd;
    dims[0] = (int64_t)hd[0];
    dims[1] = nd == 2 ? (int64_t)hd[1] : 1;
done:
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    if (rc != RD_OK) H5Dclose(d);
    else *dset = d;
    return rc;
}

rd_status rd_ckpt_shape(struct rd_ckpt *ck, const char *name, int *ndim, int64_t dims[2],
                        enum rd_dtype *dtype, char *err, int err_len)
{
    if (err && err_len > 0) err[0] = 0;
    if (!ck || !name || !ndim || !dims || !dtype) return RD_ERR_INVALID_ARG;
    hid_t d;
    RD_TRY(open_tensor(ck, name, &d, ndim, dims, dtype, err, err_len));
    H5Dclose(d);
    return RD_OK;
}

rd_status rd_ckpt_read_slice(struct rd_ckpt *ck, const char *name, int64_t row0, int64_t nrows,
                             int64_t col0, int64_t ncols, float *dst, char *err, int err_len)
{
    if (err && err_len > 0) err[0] = 0;
    if (!ck || !name || !dst) {
        set_err(err, err_len, "rd_ckpt_read_slice: NULL argument");
        return RD_ERR_INVALID_ARG;
    }
    hid_t d;
    int nd;
    int64_t dims[2];
    enum rd_dtype dt;
    RD_TRY(open_tensor(ck, name, &d, &nd, dims, &dt, err, err_len));
    /* rows/cols of the tensor seen as a matrix: a 1-D tensor is one row of dims[0] elements */
    int64_t R = nd == 2 ? dims[0] : 1, C = nd == 2 ? dims[1] : dims[0];
    if (row0 < 0 || nrows < 0 || col0 < 0 || ncols < 0 || row0 > R - nrows ||
        col0 > C - ncols) {
        set_err(err, err_len,
                "%s: slice rows [%lld, +%lld) x cols [%lld, +%lld) outside tensor '%s' [%lld, "
                "%lld]",
                ck->path, (long long)row0, (long long)nrows, (long long)col0, (long long)ncols,
                name, (long long)R, (long long)C);
        H5Dclose(d);
        return RD_ERR_RANGE;
    }
    size_t n = (size_t)nrows * (size_t)ncols;
    if (n == 0) {
        H5Dclose(d);
        return RD_OK;
    }
    rd_status rc = RD_ERR_HDF5;
    void *tmp = NULL;
    hid_t fs = H5Dget_space(d), ms = H5I_INVALID_HID;
    /* a 1-D dataset has only the column coordinate */
    hsize_t start[2] = {(hsize_t)row0, (hsize_t)col0}, count[2] = {(hsize_t)nrows, (hsize_t)ncols};
    if (nd == 1) {
        start[0] = (hsize_t)col0;
        count[0] = (hsize_t)ncols;
    }
    hsize_t mdim = (hsize_t)n;
    if (fs < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        (ms = H5Screate_simple(1, &mdim, NULL)) < 0)
        goto done;
    if (dt == RD_DTYPE_F32) {
        if (H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, dst) < 0) goto done;
    } else {
        tmp = malloc(n * sizeof(uint16_t));
        if (!tmp) {
            set_err(err, err_len, "%s: out of memory reading '%s'", ck->path, name);
            rc = RD_ERR_OOM;
            goto done;
        }
        if (H5Dread(d, H5T_NATIVE_UINT16, ms, fs, H5P_DEFAULT, tmp) < 0) goto done;
        rd_convert_to_f32(dst, tmp, dt, n);
    }
    ck->bytes_read += (uint64_t)n * rd_dtype_size(dt);
    rc = RD_OK;
done:
    if (rc == RD_ERR_HDF5)
        set_err(err, err_len, "%s: HDF5 failed reading a slice of tensor '%s'", ck->path, name);
    free(tmp);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    H5Dclose(d);
    return rc;
}

uint64_t rd_ckpt_bytes_read(const struct rd_ckpt *ck) { return ck ? ck->bytes_read : 0; }

/* ---- writer ---- */

static herr_t write_string_attr(hid_t obj, const char *name, const char *value)
{
    /* variable-length UTF-8: h5py reads it back as str */
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), a = H5I_INVALID_HID;
    herr_t r = -1;
    if (t >= 0 && sp >= 0 && H5Tset_size(t, H5T_VARIABLE) >= 0 &&
        H5Tset_cset(t, H5T_CSET_UTF8) >= 0 &&
        (a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0)
        r = H5Awrite(a, t, &value);
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    return r;
}

rd_status rd_ckpt_create(const char *path, bool force, const char *config_json,
                         struct rd_ckpt_writer **out, char *err, int err_len)
{
    if (err && err_len > 0) err[0] = 0;
    if (!path || !out || !config_json) {
        set_err(err, err_len, "rd_ckpt_create: NULL argument");
        return RD_ERR_INVALID_ARG;
    }
    *out = NULL;
    hdf5_quiet();
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (!force) {
            set_err(err, err_len, "%s already exists (use --force to overwrite)", path);
            return RD_ERR_EXISTS;
        }
        if (!S_ISREG(sb.st_mode)) {
            set_err(err, err_len, "%s exists and is not a regular file", path);
            return RD_ERR_EXISTS;
        }
    }
    struct rd_ckpt_writer *w = calloc(1, sizeof *w);
    size_t tl = strlen(path) + 32;
    if (!w || !(w->path = strdup(path)) || !(w->tmp = malloc(tl))) {
        if (w) free(w->path);
        free(w);
        set_err(err, err_len, "%s: out of memory", path);
        return RD_ERR_OOM;
    }
    snprintf(w->tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    w->force = force;
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) {
        set_err(err, err_len, "%s: cannot create the file (%s)", w->tmp,
                access(w->tmp, F_OK) == 0 ? "HDF5 error" : "directory missing or not writable");
        unlink(w->tmp);
        free(w->tmp);
        free(w->path);
        free(w);
        return RD_ERR_IO;
    }
    int version = RD_CKPT_FORMAT;
    hid_t sp = H5Screate(H5S_SCALAR), a = H5I_INVALID_HID;
    herr_t r = -1;
    if (sp >= 0 &&
        (a = H5Acreate2(w->file, "ropedist_format", H5T_STD_I32LE, sp, H5P_DEFAULT,
                        H5P_DEFAULT)) >= 0)
        r = H5Awrite(a, H5T_NATIVE_INT, &version);
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    if (r < 0 || write_string_attr(w->file, "config", config_json) < 0) {
        set_err(err, err_len, "%s: cannot write the root attributes", w->tmp);
        rd_ckpt_abort(w);
        return RD_ERR_HDF5;
    }
    *out = w;
    return RD_OK;
}

rd_status rd_ckpt_write(struct rd_ckpt_writer *w, const char *name, int ndim,
                        const int64_t *dims, enum rd_dtype dtype, const void *data)
{
    if (!w) return RD_ERR_INVALID_ARG;
    w->last_err[0] = 0;
    char p[CKPT_NAME_MAX];
    if (!name || !dims || !data || !name_to_path(name, p, sizeof p)) {
        snprintf(w->last_err, sizeof w->last_err, "%s: invalid tensor name or NULL data",
                 w->path);
        return RD_ERR_INVALID_ARG;
    }
    if (ndim < 1 || ndim > 2 || dims[0] < 0 || (ndim == 2 && dims[1] < 0) ||
        (dtype != RD_DTYPE_F32 && dtype != RD_DTYPE_BF16 && dtype != RD_DTYPE_F16)) {
        snprintf(w->last_err, sizeof w->last_err, "%s: tensor '%s': bad ndim/dims/dtype",
                 w->path, name);
        return RD_ERR_INVALID_ARG;
    }
    hsize_t hd[2] = {(hsize_t)dims[0], ndim == 2 ? (hsize_t)dims[1] : 1};
    bool f32 = dtype == RD_DTYPE_F32;
    hid_t ftype = f32 ? H5T_IEEE_F32LE : H5T_STD_U16LE;
    hid_t mtype = f32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT16;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), sp = H5Screate_simple(ndim, hd, NULL);
    hid_t d = H5I_INVALID_HID;
    rd_status rc = RD_ERR_HDF5;
    if (lcpl < 0 || sp < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) goto done;
    d = H5Dcreate2(w->file, p, ftype, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (d < 0) {
        snprintf(w->last_err, sizeof w->last_err,
                 "%s: cannot create tensor '%s' (written twice, or its path clashes with "
                 "another tensor's group)",
                 w->path, name);
        goto done;
    }
    if (H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0 ||
        (!f32 && write_string_attr(d, "dtype", rd_dtype_name(dtype)) < 0)) {
        snprintf(w->last_err, sizeof w->last_err, "%s: HDF5 failed writing tensor '%s'",
                 w->path, name);
        goto done;
    }
    rc = RD_OK;
done:
    if (rc != RD_OK && !w->last_err[0])
        snprintf(w->last_err, sizeof w->last_err, "%s: HDF5 failed preparing tensor '%s'",
                 w->path, name);
    if (d >= 0) H5Dclose(d);
    if (sp >= 0) H5Sclose(sp);
    if (lcpl >= 0) H5Pclose(lcpl);
    return rc;
}

const char *rd_ckpt_writer_error(const struct rd_ckpt_writer *w)
{
    return w ? w->last_err : "";
}

static void writer_free(struct rd_ckpt_writer *w)
{
    free(w->tmp);
    free(w->path);
    free(w);
}

rd_status rd_ckpt_finish(struct rd_ckpt_writer *w, char *err, int err_len)
{
    if (err && err_len > 0) err[0] = 0;
    if (!w) return RD_ERR_INVALID_ARG;
    herr_t fl = H5Fflush(w->file, H5F_SCOPE_GLOBAL);
    herr_t cl = H5Fclose(w->file);
    w->file = H5I_INVALID_HID;
    if (fl < 0 || cl < 0) {
        set_err(err, err_len, "%s: HDF5 failed closing the file", w->tmp);
        unlink(w->tmp);
        writer_free(w);
        return RD_ERR_HDF5;
    }
    rd_status rc = RD_OK;
    if (w->force) {
        if (rename(w->tmp, w->path) != 0) {
            set_err(err, err_len, "cannot move %s to %s: %s", w->tmp, w->path, strerror(errno));
            rc = RD_ERR_IO;
        }
    } else if (link(w->tmp, w->path) != 0) {
        /* link() refuses to replace a file that appeared since create; filesystems without
         * hard links fall back to a check and a rename */
        int e = errno;
        struct stat sb;
        if (e == EEXIST) {
            set_err(err, err_len, "%s already exists (use --force to overwrite)", w->path);
            rc = RD_ERR_EXISTS;
        } else if ((e == EPERM || e == ENOTSUP || e == EXDEV) && stat(w->path, &sb) != 0 &&
                   rename(w->tmp, w->path) == 0) {
            rc = RD_OK;
        } else {
            set_err(err, err_len, "cannot move %s to %s: %s", w->tmp, w->path, strerror(e));
            rc = RD_ERR_IO;
        }
    }
    unlink(w->tmp); /* after link(), or when the move failed; harmless after rename */
    writer_free(w);
    return rc;
}

void rd_ckpt_abort(struct rd_ckpt_writer *w)
{
    if (!w) return;
    if (w->file >= 0) H5Fclose(w->file);
    unlink(w->tmp);
    writer_free(w);
}
