package testmodel

// words are the English word pieces of every generated vocabulary, each
// stored with the SentencePiece word-start mark "▁" and with all its
// prefixes, so that the tokenizer's merges reach the whole word. The order
// is fixed: it decides token ids.
var words = []string{
	"the", "of", "and", "to", "in", "is", "it", "that", "for", "on",
	"with", "as", "was", "at", "by", "be", "this", "are", "from", "or",
	"an", "a", "I", "you", "he", "she", "we", "they", "his", "her",
	"their", "our", "my", "your", "its", "not", "but", "what", "all", "were",
	"when", "there", "can", "which", "one", "two", "three", "four", "five", "six",
	"seven", "eight", "nine", "ten", "have", "has", "had", "do", "does", "did",
	"will", "would", "could", "should", "may", "might", "must", "shall", "if", "then",
	"than", "so", "no", "yes", "up", "down", "out", "over", "under", "into",
	"about", "after", "before", "between", "through", "during", "without", "again", "very", "more",
	"most", "some", "any", "each", "every", "other", "another", "such", "only", "own",
	"same", "also", "just", "now", "here", "where", "why", "how", "who", "whom",
	"image", "picture", "photo", "shows", "show", "see", "look", "looks", "describe", "description",
	"color", "colour", "red", "green", "blue", "yellow", "black", "white", "gray", "orange",
	"purple", "pink", "brown", "dark", "light", "bright", "small", "large", "big", "little",
	"left", "right", "top", "bottom", "middle", "center", "front", "back", "side", "corner",
	"cat", "dog", "bird", "horse", "cow", "fish", "animal", "person", "people", "man",
	"woman", "child", "boy", "girl", "face", "hand", "hands", "eye", "eyes", "hair",
	"house", "building", "street", "road", "car", "bus", "train", "bike", "boat", "plane",
	"tree", "trees", "grass", "flower", "flowers", "sky", "cloud", "clouds", "sun", "moon",
	"water", "river", "lake", "sea", "beach", "mountain", "mountains", "snow", "rain", "field",
	"table", "chair", "room", "window", "door", "wall", "floor", "bed", "kitchen", "book",
	"text", "sign", "letter", "number", "word", "words", "page", "line", "lines", "shape",
	"square", "circle", "triangle", "pattern", "stripe", "stripes", "dot", "dots", "edge", "background",
	"foreground", "object", "objects", "scene", "view", "day", "night", "morning", "evening", "time",
	"year", "years", "way", "thing", "things", "part", "place", "world", "life", "work",
	"good", "new", "first", "last", "long", "great", "old", "high", "low", "different",
	"sitting", "standing", "walking", "running", "playing", "holding", "wearing", "looking", "lying", "flying",
	"made", "make", "take", "taken", "give", "get", "go", "going", "come", "know",
	"think", "say", "said", "tell", "find", "use", "used", "want", "need", "like",
	"question", "answer", "user", "assistant", "please", "thank", "thanks", "hello", "sure", "okay",
	"near", "far", "behind", "above", "below", "around", "next", "inside", "outside", "along",
	"model", "vision", "language", "token", "tokens", "test", "random", "weights", "output", "input",
}
