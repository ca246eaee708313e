using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Threading.Channels;

namespace ModelCompiler.Runtime.Paged;

/// <summary>
/// Serves many <see cref="GenerationSession"/>s from one compiled model and one <see cref="KvBlockPool"/>: a scheduler
/// thread gathers every session's pending work (a new prompt's tokens, or the one token a decoding session just
/// produced) into one <see cref="PagedEngine.Step"/> per iteration, so concurrent sessions decode as one batch (continuous
/// batching: sessions join and leave between steps). Tokens reach each caller through a channel, as an
/// <see cref="IAsyncEnumerable{T}"/>. Cancelling a generation frees the session's blocks.
/// </summary>
public sealed class PagedScheduler : IDisposable
{
    private readonly PagedEngine _engine;
    private readonly ConcurrentQueue<Request> _incoming = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private Exception? _failure;

    /// <param name="maxConcurrent">sessions decoded in one step at most (others wait their turn)</param>
    public PagedScheduler(IPagedCompiledModel model, KvBlockPool pool, int maxConcurrent = 16, int maxTokensPerStep = 4096)
    {
        MaxConcurrent = maxConcurrent;
        _engine = new PagedEngine(model, pool, maxTokensPerStep, maxConcurrent);
        _thread = new Thread(Loop) { IsBackground = true, Name = "mc paged scheduler" };
        _thread.Start();
    }

    public KvBlockPool Pool => _engine.Pool;

    public int MaxConcurrent { get; }

    /// <summary>Forward steps run so far (each one batch of all ready sessions).</summary>
    public long Steps { get; private set; }

    /// <summary>The most sessions one step has carried.</summary>
    public int LargestBatch { get; private set; }

    /// <summary>A new session whose cache may grow to <paramref name="maxTokens"/> tokens (prompts and generated tokens of all its turns).</summary>
    public GenerationSession CreateSession(int maxTokens) => new(this, maxTokens);

    internal sealed class Request(GenerationSession session, long[] prompt, int maxNewTokens, Func<ReadOnlySpan<float>, long> choose, Func<long, bool>? stop, CancellationToken cancel)
    {
        public GenerationSession Session { get; } = session;
        public long[] Feed { get; set; } = prompt;
        public int Remaining { get; set; } = maxNewTokens;
        public Func<ReadOnlySpan<float>, long> Choose { get; } = choose;
        public Func<long, bool>? Stop { get; } = stop;
        public CancellationToken Cancel { get; } = cancel;
        public Channel<long> Tokens { get; } = Channel.CreateUnbounded<long>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    }

    internal void Submit(Request request)
    {
        ObjectDisposedException.ThrowIf(_stop.IsCancellationRequested, this);
        if (_failure is not null) throw new McException($"the paged scheduler stopped: {_failure.Message}");
        _incoming.Enqueue(request);
        _wake.Release();
    }

    private void Loop()
    {
        var active = new List<Request>();
        var sequences = new List<KvSequence>();
        var feeds = new List<ReadOnlyMemory<long>>();
        var logits = new float[MaxConcurrent * _engine.Vocab];
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                if (active.Count == 0 && _incoming.IsEmpty) { _wake.Wait(_stop.Token); continue; }
                int budget = _engine.MaxTokensPerStep - active.Count;
                while (active.Count < MaxConcurrent && _incoming.TryPeek(out var next) && (active.Count == 0 || next.Feed.Length <= budget))
                {
                    _incoming.TryDequeue(out _);
                    budget -= next.Feed.Length;
                    active.Add(next);
                }
                // Cancelled generations leave now, and their sessions' blocks go back to the pool.
                for (int i = active.Count - 1; i >= 0; i--)
                    if (active[i].Cancel.IsCancellationRequested)
                    {
                        active[i].Session.ReleaseCache();
                        active[i].Tokens.Writer.TryComplete(new OperationCanceledException(active[i].Cancel));
                        active.RemoveAt(i);
                    }
                if (active.Count == 0) continue;

                sequences.Clear();
                feeds.Clear();
                foreach (var r in active) { sequences.Add(r.Session.Cache()); feeds.Add(r.Feed); }
                try
                {
                    _engine.Step(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(sequences), feeds, logits);
                }
                catch (McException e)
                {
                    // A step the pool or a session cannot take (pool full, a session past its length) ends every request in it
                    // with that error and frees their caches; later requests go on.
                    foreach (var r in active) r.Tokens.Writer.TryComplete(e);
                    foreach (var r in active) r.Session.ReleaseCache();
                    active.Clear();
                    continue;
                }
                Steps++;
                LargestBatch = Math.Max(LargestBatch, active.Count);
                for (int i = active.Count - 1; i >= 0; i--)
                {
                    var r = active[i];
                    long token = r.Choose(logits.AsSpan(i * _engine.Vocab, _engine.Vocab));
                    r.Tokens.Writer.TryWrite(token);
                    r.Remaining--;
                    if (r.Remaining <= 0 || (r.Stop?.Invoke(token) ?? false))
                    {
                        r.Session.Pending = token;   // not yet in the cache: the session's next turn feeds it first
                        r.Tokens.Writer.TryComplete();
                        active.RemoveAt(i);
                    }
                    else r.Feed = [token];
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested) { }
        catch (Exception e)
        {
            _failure = e;
            foreach (var r in active) r.Tokens.Writer.TryComplete(e);
        }
        foreach (var r in active) r.Tokens.Writer.TryComplete(new ObjectDisposedException(nameof(PagedScheduler)));
        while (_incoming.TryDequeue(out var left)) left.Tokens.Writer.TryComplete(new ObjectDisposedException(nameof(PagedScheduler)));
    }

    public void Dispose()
    {
        if (_stop.IsCancellationRequested) return;
        _stop.Cancel();
        _thread.Join();
        _wake.Dispose();
    }
}

/// <summary>
/// One conversation with a model served by a <see cref="PagedScheduler"/>: its own KV sequence in the shared pool, kept
/// across turns. <see cref="Generate"/> feeds a prompt and yields the tokens as they are decoded. One generation at a time.
/// </summary>
public sealed class GenerationSession : IDisposable
{
    private readonly PagedScheduler _scheduler;
    private readonly int _maxTokens;
    private KvSequence? _cache;
    private int _busy;

    internal GenerationSession(PagedScheduler scheduler, int maxTokens)
    {
        if (maxTokens < 1) throw new McException($"a session of {maxTokens} tokens: expected at least 1");
        _scheduler = scheduler;
        _maxTokens = maxTokens;
    }

    /// <summary>The last token generated, not yet fed back (it goes first in the next turn).</summary>
    internal long? Pending { get; set; }

    /// <summary>Tokens this session holds in the pool's cache.</summary>
    public int CachedTokens => _cache is { IsDisposed: false } c ? c.Length : 0;

    /// <summary>Blocks this session holds in the pool.</summary>
    public int BlocksHeld => _cache is { IsDisposed: false } c ? c.BlocksHeld : 0;

    // Called on the scheduler thread only.
    internal KvSequence Cache() => _cache is { IsDisposed: false } c ? c : _cache = _scheduler.Pool.CreateSequence(_maxTokens);

    internal void ReleaseCache()
    {
        _cache?.Dispose();
        Pending = null;
    }

    /// <summary>
    /// Appends <paramref name="prompt"/> to the conversation and yields up to <paramref name="maxNewTokens"/> tokens, each
    /// chosen by <paramref name="choose"/> from the logits, ending early after a token <paramref name="stop"/> accepts.
    /// Cancelling <paramref name="cancel"/> ends the enumeration with <see cref="OperationCanceledException"/> and frees
    /// the session's blocks (the conversation starts over).
    /// </summary>
    public async IAsyncEnumerable<long> Generate(long[] prompt, int maxNewTokens, Func<ReadOnlySpan<float>, long> choose,
        Func<long, bool>? stop = null, [EnumeratorCancellation] CancellationToken cancel = default)
    {
        if (maxNewTokens < 1) throw new McException($"maxNewTokens {maxNewTokens}: expected at least 1");
        if (Interlocked.Exchange(ref _busy, 1) == 1) throw new InvalidOperationException("a session runs one generation at a time");
        try
        {
            var feed = Pending is { } p ? [p, .. prompt] : prompt;
            if (feed.Length == 0) throw new McException("an empty prompt");
            Pending = null;
            var request = new PagedScheduler.Request(this, feed, maxNewTokens, choose, stop, cancel);
            _scheduler.Submit(request);
            // The scheduler ends the channel on cancellation (after freeing the blocks), so the reader waits for it.
            await foreach (var token in request.Tokens.Reader.ReadAllAsync(CancellationToken.None))
                yield return token;
        }
        finally { Volatile.Write(ref _busy, 0); }
    }

    /// <summary>Frees the session's blocks (only between generations).</summary>
    public void Dispose()
    {
        if (Volatile.Read(ref _busy) == 1) throw new InvalidOperationException("dispose a session after its generation ends");
        ReleaseCache();
    }
}
