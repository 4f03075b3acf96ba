//! GetRandomPassword: stateless, appends nothing, never logged.

use rand_core::RngCore;
use zeroize::Zeroizing;

use crate::error::SmError;
use crate::limits::{EXCLUDE_CHARACTERS_CHARS_MAX, PASSWORD_LENGTH_DEFAULT, PASSWORD_LENGTH_MAX};

#[derive(Clone, Debug, Default)]
pub struct GetRandomPassword {
    pub password_length: Option<i64>,
    pub exclude_characters: Option<String>,
    pub exclude_numbers: Option<bool>,
    pub exclude_punctuation: Option<bool>,
    pub exclude_uppercase: Option<bool>,
    pub exclude_lowercase: Option<bool>,
    pub include_space: Option<bool>,
    pub require_each_included_type: Option<bool>,
}

const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

fn uniform(rng: &mut dyn RngCore, n: usize) -> usize {
    // Rejection sampling over u32 keeps every index equally likely.
    let n32 = u32::try_from(n).expect("alphabets are small");
    let zone = u32::MAX - (u32::MAX % n32);
    loop {
        let x = rng.next_u32();
        if x < zone {
            return usize::try_from(x % n32).expect("fits");
        }
    }
}

pub fn get_random_password(q: &GetRandomPassword, rng: &mut dyn RngCore) -> Result<Zeroizing<String>, SmError> {
    let length = q.password_length.unwrap_or(PASSWORD_LENGTH_DEFAULT);
    if !(1..=PASSWORD_LENGTH_MAX).contains(&length) {
        let message = format!("Member must have value between 1 and {PASSWORD_LENGTH_MAX}");
        return Err(SmError::validation("passwordLength", &message));
    }
    let exclude = q.exclude_characters.clone().unwrap_or_default();
    crate::validate::check_len("excludeCharacters", &exclude, 0, EXCLUDE_CHARACTERS_CHARS_MAX)?;
    let mut classes: Vec<Vec<char>> = Vec::new();
    let mut add = |on: bool, chars: &mut dyn Iterator<Item = char>| {
        if on {
            let kept: Vec<char> = chars.filter(|c| !exclude.contains(*c)).collect();
            if !kept.is_empty() {
                classes.push(kept);
            }
        }
    };
    add(!q.exclude_lowercase.unwrap_or(false), &mut ('a'..='z'));
    add(!q.exclude_uppercase.unwrap_or(false), &mut ('A'..='Z'));
    add(!q.exclude_numbers.unwrap_or(false), &mut ('0'..='9'));
    add(!q.exclude_punctuation.unwrap_or(false), &mut PUNCTUATION.chars());
    add(q.include_space.unwrap_or(false), &mut std::iter::once(' '));
    if classes.is_empty() {
        return Err(SmError::InvalidParameter("The password has no characters to choose from.".into()));
    }
    let length = usize::try_from(length).expect("checked range");
    let require_each = q.require_each_included_type.unwrap_or(true);
    if require_each && length < classes.len() {
        return Err(SmError::InvalidParameter("Password length is too short based on the required types.".into()));
    }
    let all: Vec<char> = classes.iter().flatten().copied().collect();
    let mut chars: Vec<char> = (0..length).map(|_| all[uniform(rng, all.len())]).collect();
    if require_each {
        // Put one character of each class at distinct random positions.
        let mut positions: Vec<usize> = (0..length).collect();
        for (i, class) in classes.iter().enumerate() {
            let j = i + uniform(rng, length - i);
            positions.swap(i, j);
            chars[positions[i]] = class[uniform(rng, class.len())];
        }
    }
    let password: String = chars.iter().collect();
    chars.iter_mut().for_each(|c| *c = '\0');
    Ok(Zeroizing::new(password))
}
