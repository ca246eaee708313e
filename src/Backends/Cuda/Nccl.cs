using System.Runtime.InteropServices;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Cuda;

/// <summary>
/// NVIDIA's NCCL (<c>libnccl.so.2</c>) reached through function pointers. The library is looked for, in order, at
/// <c>MC_NCCL_PATH</c> (the file or its folder; when set, nothing else is tried), through the system's library search,
/// and in the <c>nvidia/nccl/lib</c> folder of the Python environments where PyTorch's wheels put it. Loading it
/// explicitly (rather than through a <c>DllImport</c> resolver, which is one per assembly) keeps the choice here.
/// </summary>
public sealed unsafe class NcclLibrary
{
    public const string PathVariable = "MC_NCCL_PATH";

    /// <summary>ncclDataType_t and ncclRedOp_t values of nccl.h.</summary>
    public const int Float32 = 7, Sum = 0;

    private readonly delegate* unmanaged<nint*, int, int*, int> _commInitAll;
    private readonly delegate* unmanaged<nint, int> _commDestroy, _commAbort;
    private readonly delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int> _allReduce;
    private readonly delegate* unmanaged<nint, nint, nuint, int, nint, nint, int> _allGather;
    private readonly delegate* unmanaged<int> _groupStart, _groupEnd;
    private readonly delegate* unmanaged<int, nint> _errorString;
    private readonly delegate* unmanaged<int*, int> _version;

    private NcclLibrary(nint handle, string path)
    {
        Path = path;
        nint Export(string name) => NativeLibrary.TryGetExport(handle, name, out var f)
            ? f : throw new McException($"{path}: no export {name} (an NCCL 2.x libnccl.so.2 is needed)");
        _commInitAll = (delegate* unmanaged<nint*, int, int*, int>)Export("ncclCommInitAll");
        _commDestroy = (delegate* unmanaged<nint, int>)Export("ncclCommDestroy");
        _commAbort = (delegate* unmanaged<nint, int>)Export("ncclCommAbort");
        _allReduce = (delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int>)Export("ncclAllReduce");
        _allGather = (delegate* unmanaged<nint, nint, nuint, int, nint, nint, int>)Export("ncclAllGather");
        _groupStart = (delegate* unmanaged<int>)Export("ncclGroupStart");
        _groupEnd = (delegate* unmanaged<int>)Export("ncclGroupEnd");
        _errorString = (delegate* unmanaged<int, nint>)Export("ncclGetErrorString");
        _version = (delegate* unmanaged<int*, int>)Export("ncclGetVersion");
    }

    /// <summary>Where the library was loaded from.</summary>
    public string Path { get; }

    /// <summary>NCCL's version code (e.g. 22703 for 2.27.3).</summary>
    public int Version
    {
        get
        {
            int v;
            Check(_version(&v), "ncclGetVersion");
            return v;
        }
    }

    private static readonly object Gate = new();
    private static NcclLibrary? _loaded;

    /// <summary>The library, loaded once per process (<see cref="PathVariable"/> is read at the first call).</summary>
    public static NcclLibrary Shared
    {
        get
        {
            lock (Gate) return _loaded ??= Load(Environment.GetEnvironmentVariable(PathVariable));
        }
    }

    /// <summary>
    /// Loads NCCL from <paramref name="explicitPath"/> (a file or a folder holding libnccl.so.2) when given, otherwise
    /// from the default places; a one-line <see cref="McException"/> naming what to install when it is nowhere.
    /// </summary>
    public static NcclLibrary Load(string? explicitPath)
    {
        foreach (var candidate in Candidates(explicitPath))
            if (NativeLibrary.TryLoad(candidate, out var handle)) return new NcclLibrary(handle, candidate);
        throw new McException(string.IsNullOrEmpty(explicitPath)
            ? $"--tp on --target cuda needs NVIDIA's NCCL (libnccl.so.2), which was not found: install it (the libnccl2 package, or pip's nvidia-nccl-cu12/cu13, which PyTorch brings) or set {PathVariable} to the library or its folder"
            : $"{PathVariable}={UserText.Quote(explicitPath)}: no loadable libnccl.so.2 there (install NVIDIA's NCCL: the libnccl2 package, or pip's nvidia-nccl-cu12/cu13)");
    }

    private static IEnumerable<string> Candidates(string? explicitPath)
    {
        const string file = "libnccl.so.2";
        if (!string.IsNullOrEmpty(explicitPath))
        {
            yield return Directory.Exists(explicitPath) ? System.IO.Path.Combine(explicitPath, file) : explicitPath;
            yield break;
        }
        yield return file;
        // PyTorch's CUDA wheels carry NCCL as the nvidia-nccl-* package: <site-packages>/nvidia/nccl/lib.
        var roots = new List<string>();
        if (Environment.GetEnvironmentVariable("VIRTUAL_ENV") is { Length: > 0 } venv) roots.Add(System.IO.Path.Combine(venv, "lib"));
        roots.AddRange(["/usr/local/lib", "/usr/lib", "/opt/conda/lib"]);
        foreach (var opt in SafeDirectories("/opt")) roots.Add(System.IO.Path.Combine(opt, ".venv", "lib"));
        foreach (var root in roots)
            foreach (var python in SafeDirectories(root).Where(d => System.IO.Path.GetFileName(d).StartsWith("python3", StringComparison.Ordinal)))
                foreach (var packages in (string[])["site-packages", "dist-packages"])
                {
                    var path = System.IO.Path.Combine(python, packages, "nvidia", "nccl", "lib", file);
                    if (File.Exists(path)) yield return path;
                }
    }

    private static string[] SafeDirectories(string path)
    {
        try { return Directory.Exists(path) ? Directory.GetDirectories(path) : []; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return []; }
    }

    public void Check(int result, string call)
    {
        if (result == 0) return;
        var text = Marshal.PtrToStringAnsi(_errorString(result)) ?? "unknown error";
        throw new McException($"{call} failed: NCCL error {result} ({UserText.Detail(text)})");
    }

    public nint[] CommInitAll(int[] devices)
    {
        var comms = new nint[devices.Length];
        fixed (nint* c = comms)
        fixed (int* d = devices)
            Check(_commInitAll(c, devices.Length, d), "ncclCommInitAll");
        return comms;
    }

    public void CommDestroy(nint comm) => Check(_commDestroy(comm), "ncclCommDestroy");

    public void CommAbort(nint comm) => Check(_commAbort(comm), "ncclCommAbort");

    public void AllReduceSum(nint send, nint receive, long count, nint comm, nint stream) =>
        Check(_allReduce(send, receive, (nuint)count, Float32, Sum, comm, stream), "ncclAllReduce");

    public void AllGather(nint send, nint receive, long sendCount, nint comm, nint stream) =>
        Check(_allGather(send, receive, (nuint)sendCount, Float32, comm, stream), "ncclAllGather");

    public void GroupStart() => Check(_groupStart(), "ncclGroupStart");

    public void GroupEnd() => Check(_groupEnd(), "ncclGroupEnd");
}
