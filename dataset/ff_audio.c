/*
 * ff_audio.c - audio harmonisation: a WAV clip becomes a log mel-band
 * spectrogram of FF_AUDIO_BANDS x FF_AUDIO_FRAMES, normalised per clip.
 *
 * Steps: first channel -> resample to FF_AUDIO_RATE (libsamplerate) ->
 * Hann frames of FF_AUDIO_WINDOW every FF_AUDIO_HOP -> FFTW r2c -> power
 * -> FF_AUDIO_BANDS triangular bands equally spaced on the mel scale from
 * 0 Hz to FF_AUDIO_RATE / 2 -> log -> zero mean, unit variance over the
 * frames the clip has -> cut or pad (with the clip's minimum) to
 * FF_AUDIO_FRAMES frames.
 */
#include "ff_dataset.h"
#include "ff_dataset_util.h"

#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <samplerate.h>
#include <sndfile.h>
#include <stdlib.h>
#include <string.h>

#define NBINS (FF_AUDIO_WINDOW / 2 + 1)
#define LOG_FLOOR 1e-10f

/* Samples at FF_AUDIO_RATE that FF_AUDIO_FRAMES frames need; input past
 * that is never read. */
#define NEEDED_SAMPLES ((FF_AUDIO_FRAMES - 1) * FF_AUDIO_HOP + FF_AUDIO_WINDOW)

/* Accepted input formats. */
#define RATE_MIN 1000
#define RATE_MAX 384000
#define CHANNELS_MAX 64

/*
 * One r2c plan for the process, made once (the FFTW planner is not
 * thread-safe; executing a plan on other arrays of the same alignment is).
 * It is never destroyed: it is immutable and lives as long as the process.
 */
static pthread_once_t plan_once = PTHREAD_ONCE_INIT;
static fftwf_plan plan;

static void
plan_make(void)
{
    float *in = fftwf_malloc(sizeof(float) * FF_AUDIO_WINDOW);
    fftwf_complex *out = fftwf_malloc(sizeof(fftwf_complex) * NBINS);

    if (in != NULL && out != NULL)
        plan = fftwf_plan_dft_r2c_1d(FF_AUDIO_WINDOW, in, out, FFTW_ESTIMATE);
    fftwf_free(in);
    fftwf_free(out);
}

static double
hz_to_mel(double hz)
{
    return 2595.0 * log10(1.0 + hz / 700.0);
}

static double
mel_to_hz(double mel)
{
    return 700.0 * (pow(10.0, mel / 2595.0) - 1.0);
}

/* Weight of FFT bin k in triangular band b: rises from edge b to edge
 * b + 1 and falls to edge b + 2 (edges equally spaced in mel). */
static void
mel_weights(float w[FF_AUDIO_BANDS][NBINS])
{
    double edge[FF_AUDIO_BANDS + 2];
    double top = hz_to_mel(FF_AUDIO_RATE / 2.0);

    for (int i = 0; i < FF_AUDIO_BANDS + 2; i++)
        edge[i] = mel_to_hz(top * i / (FF_AUDIO_BANDS + 1));
    for (int b = 0; b < FF_AUDIO_BANDS; b++)
        for (int k = 0; k < NBINS; k++) {
            double f = (double)k * FF_AUDIO_RATE / FF_AUDIO_WINDOW;
            double v = 0.0;
            if (f > edge[b] && f <= edge[b + 1])
                v = (f - edge[b]) / (edge[b + 1] - edge[b]);
            else if (f > edge[b + 1] && f < edge[b + 2])
                v = (edge[b + 2] - f) / (edge[b + 2] - edge[b + 1]);
            w[b][k] = (float)v;
        }
}

/* Log band energies of frames [0, nframes) into out[band][frame]. */
static ff_status
band_energies(const float *pcm, size_t n, int nframes,
              float out[FF_AUDIO_SIZE], ff_error *err)
{
    float win[FF_AUDIO_WINDOW], power[NBINS];
    float *in = fftwf_malloc(sizeof(float) * FF_AUDIO_WINDOW);
    fftwf_complex *spec = fftwf_malloc(sizeof(fftwf_complex) * NBINS);
    float(*w)[NBINS] = malloc(sizeof(float) * FF_AUDIO_BANDS * NBINS);
    ff_status st = FF_OK;

    if (in == NULL || spec == NULL || w == NULL) {
        st = ff_error_set(err, FF_ERR_NOMEM, "audio: no memory");
        goto done;
    }
    mel_weights(w);
    for (int i = 0; i < FF_AUDIO_WINDOW; i++)
        win[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / FF_AUDIO_WINDOW));

    for (int t = 0; t < nframes; t++) {
        size_t start = (size_t)t * FF_AUDIO_HOP;

        /* Window one frame (zero past the end of a short clip). */
        for (int i = 0; i < FF_AUDIO_WINDOW; i++)
            in[i] = start + (size_t)i < n ? pcm[start + (size_t)i] * win[i]
                                          : 0.0f;
        fftwf_execute_dft_r2c(plan, in, spec);
        for (int k = 0; k < NBINS; k++)
            power[k] = spec[k][0] * spec[k][0] + spec[k][1] * spec[k][1];

        /* Sum the power under each triangle; log with a floor. */
        for (int b = 0; b < FF_AUDIO_BANDS; b++) {
            float e = 0.0f;
            for (int k = 0; k < NBINS; k++)
                e += w[b][k] * power[k];
            out[b * FF_AUDIO_FRAMES + t] = logf(e + LOG_FLOOR);
        }
    }

done:
    free(w);
    fftwf_free(spec);
    fftwf_free(in);
    return st;
}

/* Zero mean, unit variance over the nframes real frames, then pads the
 * rest of each band with the (normalised) minimum. */
static void
normalise(float out[FF_AUDIO_SIZE], int nframes)
{
    double sum = 0.0, sq = 0.0, sd;
    float lo = INFINITY;
    size_t count = (size_t)nframes * FF_AUDIO_BANDS;

    for (int b = 0; b < FF_AUDIO_BANDS; b++)
        for (int t = 0; t < nframes; t++)
            sum += out[b * FF_AUDIO_FRAMES + t];
    double mean = sum / (double)count;
    for (int b = 0; b < FF_AUDIO_BANDS; b++)
        for (int t = 0; t < nframes; t++) {
            double d = out[b * FF_AUDIO_FRAMES + t] - mean;
            sq += d * d;
        }
    sd = sqrt(sq / (double)count);

    /* A constant clip (e.g. digital silence) normalises to zeros. */
    for (int b = 0; b < FF_AUDIO_BANDS; b++)
        for (int t = 0; t < nframes; t++) {
            float *v = &out[b * FF_AUDIO_FRAMES + t];
            *v = sd > 1e-12 ? (float)((*v - mean) / sd) : 0.0f;
            if (*v < lo)
                lo = *v;
        }
    for (int b = 0; b < FF_AUDIO_BANDS; b++)
        for (int t = nframes; t < FF_AUDIO_FRAMES; t++)
            out[b * FF_AUDIO_FRAMES + t] = lo;
}

ff_status
ff_audio_features(const float *pcm, size_t n, float out[FF_AUDIO_SIZE],
                  ff_error *err)
{
    int nframes;
    ff_status st;

    if (pcm == NULL || n == 0)
        return ff_error_set(err, FF_ERR_FORMAT, "audio: empty clip");
    for (size_t i = 0; i < n; i++)
        if (!isfinite(pcm[i]))
            return ff_error_set(err, FF_ERR_NONFINITE,
                                "audio: sample %zu is not finite", i);
    pthread_once(&plan_once, plan_make);
    if (plan == NULL)
        return ff_error_set(err, FF_ERR_INTERNAL, "audio: FFTW plan failed");

    /* Frames that fit (a clip shorter than one window gives one). */
    if (n <= FF_AUDIO_WINDOW)
        nframes = 1;
    else if ((n - FF_AUDIO_WINDOW) / FF_AUDIO_HOP + 1 >= FF_AUDIO_FRAMES)
        nframes = FF_AUDIO_FRAMES;
    else
        nframes = (int)((n - FF_AUDIO_WINDOW) / FF_AUDIO_HOP + 1);

    st = band_energies(pcm, n, nframes, out, err);
    if (st != FF_OK)
        return st;
    normalise(out, nframes);
    return FF_OK;
}

/* Reads at most max frames of channel 0 of an open file into *out. */
static ff_status
read_first_channel(const char *path, SNDFILE *sf, const SF_INFO *info,
                   size_t max, float **out, size_t *n, ff_error *err)
{
    size_t want = (size_t)info->frames < max ? (size_t)info->frames : max;
    size_t ch = (size_t)info->channels;
    float *inter = malloc(sizeof(float) * want * ch);
    float *mono = malloc(sizeof(float) * want);
    sf_count_t got = 0;
    ff_status st = FF_OK;

    if (inter == NULL || mono == NULL) {
        st = ff_error_set(err, FF_ERR_NOMEM, "%s: no memory", path);
        goto done;
    }
    got = sf_readf_float(sf, inter, (sf_count_t)want);
    if (got <= 0) {
        st = ff_error_set(err, FF_ERR_FORMAT, "%s: no samples (%s)", path,
                          sf_strerror(sf));
        goto done;
    }
    for (size_t i = 0; i < (size_t)got; i++)
        mono[i] = inter[i * ch];
    *out = mono;
    *n = (size_t)got;
    mono = NULL;

done:
    free(mono);
    free(inter);
    return st;
}

/* Resamples pcm (n samples at rate) to FF_AUDIO_RATE into *out. */
static ff_status
resample(const char *path, const float *pcm, size_t n, int rate,
         float **out, size_t *nout, ff_error *err)
{
    double ratio = (double)FF_AUDIO_RATE / rate;
    size_t cap = (size_t)ceil((double)n * ratio) + 16;
    float *buf = malloc(sizeof(float) * cap);
    SRC_DATA d;
    int rc;

    if (buf == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "%s: no memory", path);
    memset(&d, 0, sizeof(d));
    d.data_in = pcm;
    d.input_frames = (long)n;
    d.data_out = buf;
    d.output_frames = (long)cap;
    d.src_ratio = ratio;
    rc = src_simple(&d, SRC_SINC_MEDIUM_QUALITY, 1);
    if (rc != 0) {
        free(buf);
        return ff_error_set(err, FF_ERR_INTERNAL, "%s: resampling: %s", path,
                            src_strerror(rc));
    }
    *out = buf;
    *nout = (size_t)d.output_frames_gen;
    return FF_OK;
}

/* Reads the prefix that FF_AUDIO_FRAMES frames need, at FF_AUDIO_RATE. */
static ff_status
wav_read_pcm(const char *path, float **pcm, size_t *n, ff_error *err)
{
    SF_INFO info;
    SNDFILE *sf;
    float *raw = NULL;
    size_t nraw = 0, max;
    ff_status st;

    /* Open and check the header before any sample buffer exists. */
    memset(&info, 0, sizeof(info));
    int fd = ff_file_open_regular(path, err);
    if (fd < 0)
        return FF_ERR_IO;
    sf = sf_open_fd(fd, SFM_READ, &info, SF_TRUE);
    if (sf == NULL)
        return ff_error_set(err, FF_ERR_FORMAT, "%s: %s", path,
                            sf_strerror(NULL));
    if (info.samplerate < RATE_MIN || info.samplerate > RATE_MAX ||
        info.channels < 1 || info.channels > CHANNELS_MAX ||
        info.frames < 1) {
        sf_close(sf);
        return ff_error_set(err, FF_ERR_FORMAT,
                            "%s: unsupported audio (%d Hz, %d channels, "
                            "%lld frames)", path, info.samplerate,
                            info.channels, (long long)info.frames);
    }

    /* Only the first NEEDED_SAMPLES output samples are used: read that
     * much input plus 10 ms for the resampler's filter to settle. */
    max = (size_t)ceil((double)NEEDED_SAMPLES * info.samplerate /
                       FF_AUDIO_RATE) + (size_t)info.samplerate / 100;
    st = read_first_channel(path, sf, &info, max, &raw, &nraw, err);
    sf_close(sf);
    if (st != FF_OK)
        return st;
    if (info.samplerate == FF_AUDIO_RATE) {
        *pcm = raw;
        *n = nraw;
        return FF_OK;
    }
    st = resample(path, raw, nraw, info.samplerate, pcm, n, err);
    free(raw);
    return st;
}

ff_status
ff_audio_load_wav(const char *path, float out[FF_AUDIO_SIZE], ff_error *err)
{
    float *pcm = NULL;
    size_t n = 0;
    ff_status st;

    st = wav_read_pcm(path, &pcm, &n, err);
    if (st != FF_OK)
        return st;
    if (n > NEEDED_SAMPLES)
        n = NEEDED_SAMPLES;
    st = ff_audio_features(pcm, n, out, err);
    free(pcm);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "%s", path);
    return FF_OK;
}
