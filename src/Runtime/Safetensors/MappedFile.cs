using System.IO.MemoryMappedFiles;

namespace ModelCompiler.Runtime;

/// <summary>
/// A whole file mapped read-only, for the readers that validate a file in place and hand out spans of it
/// (<see cref="SafetensorsFile"/>, <see cref="Gguf.GgufFile"/>). Failing to open or map it, or a file shorter than the
/// format's smallest header (the empty file cannot be mapped at all), is a one-line <see cref="ModelFormatException"/>.
/// </summary>
internal sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile _mapping;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _base;

    public long Length { get; }

    private MappedFile(MemoryMappedFile mapping, MemoryMappedViewAccessor view, long length)
    {
        _mapping = mapping;
        _view = view;
        Length = length;
        byte* pointer = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        _base = pointer + _view.PointerOffset;
    }

    public static MappedFile Open(string path, long minLength, string format)
    {
        ArgumentNullException.ThrowIfNull(path);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw SafetensorsErrors.Format(path, $"cannot open: {e.Message}", e);
        }
        try
        {
            long length = stream.Length;
            if (length < minLength)
                throw SafetensorsErrors.Format(path, $"file is too short to be {format} ({length} bytes, need at least {minLength})");
            var mapping = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            try
            {
                return new MappedFile(mapping, mapping.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read), length);
            }
            catch
            {
                mapping.Dispose();
                throw;
            }
        }
        catch (IOException e)
        {
            stream.Dispose();
            throw SafetensorsErrors.Format(path, $"cannot map: {e.Message}", e);
        }
        catch
        {
            stream.Dispose(); // no-op when the mapping already owns and closed it
            throw;
        }
    }

    /// <summary>Bytes [offset, offset + length) of the file, which the caller has checked lie inside it.</summary>
    public ReadOnlySpan<byte> Span(long offset, int length)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        return new ReadOnlySpan<byte>(_base + offset, length);
    }

    public void Dispose()
    {
        if (_base != null)
        {
            _base = null;
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
        _view.Dispose();
        _mapping.Dispose();
    }
}
